"""The memory a sampling run may take and the batch that fits: free memory, measured prior cost, batch choice.

The bottom of :mod:`svimg.sampling`'s memory handling: it imports nothing from its siblings, so the
samplers (:mod:`._common`, :mod:`.prior_eval`) and the forecast above them (:mod:`.memory`) all build on it.

Peak memory of :func:`svimg.sample` on a (T, C, H, W) video, in bytes::

    peak = now + volumes * V + batch * f        V = T * C * H * W * itemsize

* ``now``: the process's memory before the run (it already holds y);
* ``volumes`` = :data:`SAMPLER_VOLUMES` (+1 with ``gamma``): the video-sized
  tensors alive at once during a step: the measurement y, x (reused for x0),
  eps, A^T y, CG's x, r, p and H p, and up to half a video of temporaries.
  Data steps run in float64 on the CPU when that working set (twice the data
  step's volumes, plus float64 copies of y and x0: 18 volumes for float32 input)
  takes at most :data:`F64_SHARE` of the free memory, else in the input's dtype
  with float64 inner products (:func:`working_set`);
* ``f``: the prior's peak extra memory for ONE frame of H x W (:class:`PriorCost`).

``batch_size=None`` (:class:`AutoBatch`) takes the largest batch with
``peak <= SAFETY * free`` and with at most :data:`CPU_PRIOR_BUDGET` bytes of prior activations on the CPU,
where a bigger batch is no faster per frame (docs/long_videos.md) and would only
take memory from everything else; but at least one frame per thread, which the prior's engine may run
side by side (``onnxruntime-frames``, :mod:`svimg.priors.engine`).  ``free`` is the smallest of MemAvailable
(/proc/meminfo), the address-space limit (RLIMIT_AS) less the process's
address space, and the cgroup's memory.max less memory.current; on CUDA it
is ``torch.cuda.mem_get_info``.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass

import torch

__all__ = ["SAMPLER_VOLUMES", "F64_SHARE", "working_set", "SAFETY", "CPU_PRIOR_BUDGET", "free_memory", "process_memory",
           "PriorCost", "measured", "AutoBatch", "sampler_volumes", "choose_batch"]

SAMPLER_VOLUMES = 9
F64_SHARE = 0.25
SAFETY = 0.8
CPU_PRIOR_BUDGET = 1 << 29
FIRST_CHUNK_BYTES = 1 << 28
FIRST_CHUNK_BYTES_PER_PIXEL = 2048


def sampler_volumes(weighted, ratio: int = 1) -> int:
    """Video-sized tensors alive at once in :func:`svimg.sample`, in units of the input's volume (module docstring).

    ``weighted`` (a ``gamma`` or ``noise_std`` data step) adds b = x0 + w A^T y.  ``ratio``: the data
    step's item size over the input's (2 for float64 data steps on float32 input); the data step's
    five volumes (A^T y, CG's x, r, p, H p) then weigh ``ratio`` each, and its copies of y and x0 join them.
    """
    data = 5 + bool(weighted) + (2 if ratio != 1 else 0)
    return SAMPLER_VOLUMES - 5 + ratio * data


def working_set(device, dtype: torch.dtype, volume: int, weighted: bool) -> tuple[torch.dtype, int]:
    """(data-step dtype, working volumes) for a video of ``volume`` bytes in ``dtype`` on ``device``.

    float64 on the CPU when its working set fits in :data:`F64_SHARE` of the free memory, else
    ``dtype`` (float64 inner products either way, as on CUDA).
    """
    if torch.device(device).type == "cpu" and dtype != torch.float64:
        volumes = sampler_volumes(weighted, 8 // torch.empty((), dtype=dtype).element_size())
        if volumes * volume <= F64_SHARE * free_memory(device):
            return torch.float64, volumes
    return dtype, sampler_volumes(weighted)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _cgroup_room() -> int | None:
    try:
        limit = open("/sys/fs/cgroup/memory.max").read().strip()
        used = int(open("/sys/fs/cgroup/memory.current").read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used


def process_memory(device) -> int:
    """What this process holds now: resident bytes on the CPU, bytes allocated by torch on CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return _status_bytes("VmRSS") or 0


def free_memory(device) -> int:
    """Bytes this process may still take on ``device`` (module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    candidates = [_meminfo_available(), _cgroup_room()]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        candidates.append(soft - (_status_bytes("VmSize") or 0))
    known = [c for c in candidates if c is not None]
    return max(0, min(known)) if known else 0


@dataclass(frozen=True)
class PriorCost:
    """The prior on one H x W frame: peak extra memory (bytes) and seconds, measured once."""

    frame_bytes: int
    frame_seconds: float


class _PeakRSS:
    """Highest resident memory seen while the block runs (a thread polls /proc/self/statm; torch releases the GIL).

    Under an address-space limit (RLIMIT_AS) the address space is what runs out, so its growth counts too.
    """

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.field = (0, 1) if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY else (1,)

    def _sizes(self) -> tuple:
        with open("/proc/self/statm") as f:
            values = f.read().split()
        return tuple(int(values[i]) * self.page for i in self.field)

    def _poll(self):
        while not self._stop.is_set():
            self.peak = tuple(map(max, self.peak, self._sizes()))
            self._stop.wait(0.001)

    def __enter__(self):
        self.marks = [_status_bytes("VmHWM") or 0] + ([_status_bytes("VmPeak") or 0] if len(self.field) == 2 else [])
        self.start = self.peak = self._sizes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = tuple(map(max, self.peak, self._sizes()))

    @property
    def extra(self) -> int:
        """Polled growth, or the kernel's high-water marks (VmHWM, VmPeak) when the block raised them: a
        starved polling thread can miss a short peak, the marks do not."""
        marks = [_status_bytes("VmHWM") or 0] + ([_status_bytes("VmPeak") or 0] if len(self.field) == 2 else [])
        grown = [m - s for m, before, s in zip(marks, self.marks, (self.start[-1], self.start[0])) if m > before]
        return max([p - s for p, s in zip(self.peak, self.start)] + grown)


class measured:
    """``with measured(device) as m: ...`` sets ``m.seconds`` and ``m.extra_bytes`` (peak memory above the start)."""

    def __init__(self, device):
        self.device = torch.device(device)

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._rss = _PeakRSS().__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra_bytes = torch.cuda.max_memory_allocated(self.device) - self._before
        else:
            self._rss.__exit__(*exc)
            self.extra_bytes = self._rss.extra
        self.seconds = time.perf_counter() - self._started


class AutoBatch:
    """``batch_size=None`` of the samplers: the first prior call measures, then the batch is chosen.

    The first call runs on the first ``first_frames(H, W)`` frames (a chunk of at
    most :data:`FIRST_CHUNK_BYTES` at :data:`FIRST_CHUNK_BYTES_PER_PIXEL`, the whole
    video when it is small), timed and measured; its cost per frame gives the
    batch by :func:`choose_batch`, with the ``volumes - 2`` video-sized tensors
    not yet allocated (y and x exist already) kept free.
    """

    def __init__(self, volumes: int, device):
        self.volumes, self.device = volumes, torch.device(device)
        self.cost = self.free = None

    @staticmethod
    def first_frames(frames: int, pixels: int) -> int:
        return max(1, min(frames, FIRST_CHUNK_BYTES // (pixels * FIRST_CHUNK_BYTES_PER_PIXEL)))

    def start(self):
        """Note the free memory before the first call (memory it frees may stay mapped to the process)."""
        self.free = free_memory(self.device)

    def decide(self, x: torch.Tensor, frames_measured: int, m: measured) -> int:
        """The batch for video ``x`` after the first call measured ``m`` on ``frames_measured`` frames."""
        self.cost = PriorCost(max(1, int(m.extra_bytes) // frames_measured), m.seconds / frames_measured)
        volume = x.numel() * x.element_size()
        batch = choose_batch(x.shape[0], volume, self.volumes - 2, self.cost, self.free, self.device)
        if batch < 1:
            raise MemoryError(
                f"the video's {self.volumes} working volumes of {volume / 1e9:.2f} GB do not fit in the "
                f"{self.free / 1e9:.1f} GB free on {self.device}; use svimg.sampling.windows.sample_windowed"
            )
        return batch

    def describe(self) -> str:
        """The provenance record of the choice."""
        if self.cost is None:
            return "auto"
        return (f"auto: prior {self.cost.frame_bytes / 1e6:.0f} MB and {self.cost.frame_seconds:.3g} s per frame "
                f"measured, {self.free / 1e9:.1f} GB free")


def choose_batch(frames: int, volume_bytes: int, volumes: int, cost: PriorCost, free: int, device) -> int:
    """The most frames per prior call that fit (module docstring); 0 when not even one frame fits beside the volumes."""
    fit = int((SAFETY * free - volumes * volume_bytes) // cost.frame_bytes)
    if fit < 1:
        return 0
    if torch.device(device).type == "cpu":
        fit = min(fit, max(torch.get_num_threads(), CPU_PRIOR_BUDGET // cost.frame_bytes))
    return min(frames, fit)


