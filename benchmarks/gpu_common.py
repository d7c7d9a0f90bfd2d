"""Shared pieces of the GPU check scripts: device description, peak bandwidth, timing, result files.

Used by ``gpu_bench_kernels.py`` and ``gpu_e2e.py`` (run by ``gpu_run.sh``).
Every function also works on the CPU so the scripts can be dry-run
(``--device cpu --tiny``) on a machine without a GPU.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

#: Peak DRAM bandwidth by device name, bytes/s (vendor figures).  Checked in order: first match wins.
PEAK_BANDWIDTH = [
    ("H200", 4.8e12, "H200 (HBM3e) 4.8 TB/s"),
    ("H100 PCIe", 2.0e12, "H100 PCIe 2.0 TB/s"),
    ("H100 NVL", 3.9e12, "H100 NVL 3.9 TB/s"),
    ("H100", 3.35e12, "H100 SXM 3.35 TB/s"),
    ("RTX 4090", 1.008e12, "RTX 4090 1.008 TB/s"),
]

#: The paper's figures (RTX 4090, 16 frames of 256x256, ADM-256 prior).
PAPER = {"s_per_video": {20: 12.0, 100: 60.0}, "vram_gb": {16: 13.3, 32: 23.7}, "card": "RTX 4090"}


def lookup_peak(name: str) -> tuple[float | None, str | None]:
    """(bytes/s, label) of the first table entry whose key occurs in the device ``name``, else (None, None)."""
    for key, bandwidth, label in PEAK_BANDWIDTH:
        if key.lower() in name.lower():
            return bandwidth, label
    return None, None


def device_info(device: torch.device) -> dict:
    """Name and properties of ``device`` plus library versions and the date (UTC)."""
    info = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "device_type": device.type,
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                    memory_gb=round(props.total_memory / 1e9, 1), cuda=torch.version.cuda)
    else:
        info.update(name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def slug(text: str) -> str:
    """A file-name-safe form of a device name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Median wall time of a callable on ``device``.

    On CUDA each repetition first overwrites a 256 MiB buffer (evicting the
    L2 cache, so a volume that fits in L2 is still read from DRAM) and is
    timed with CUDA events; on the CPU with ``time.perf_counter``.
    """

    def __init__(self, device: torch.device, flush: bool = True):
        self.device = device
        self._flush = torch.empty(256 << 20, dtype=torch.int8, device=device) if device.type == "cuda" and flush else None

    def __call__(self, fn, reps: int = 20, warmup: int = 3) -> float:
        for _ in range(warmup):
            fn()
        sync(self.device)
        times = []
        for _ in range(reps):
            if self._flush is not None:
                self._flush.zero_()
            if self.device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def copy_bandwidth(device: torch.device, nbytes: int, reps: int = 10) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (each copy reads and writes ``nbytes``)."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    seconds = Timer(device, flush=False)(lambda: dst.copy_(src), reps=reps)
    return 2 * src.numel() * 4 / seconds


def results_stem(out_dir: str | os.PathLike, kind: str, info: dict) -> Path:
    """``out_dir/<kind>_<device slug>_<YYYYmmdd-HHMM>`` (no suffix); creates ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = info["date_utc"].replace("-", "").replace(" ", "-").replace(":", "")
    return out / f"{kind}_{slug(info['name'])}_{stamp}"


def write_results(stem: Path, data: dict, markdown: str) -> None:
    """Write ``stem.json`` and ``stem.md`` and echo the markdown."""
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    print(f"results: {stem}.json, {stem}.md")


def md_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; floats printed with 3 significant digits."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
