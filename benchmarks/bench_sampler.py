"""``svimg.sample``: seconds per prior evaluation (NFE) and peak memory against the number of frames T.

T = 4, 8, 16, 32, 64 frames of 3 x 64 x 64 (small frames so that the CPU
run stays short; the bundled prior is trained at 64 x 64), uniform width-7
temporal PSF, ``batch_size=4`` frames per prior call for every T, ``nfe=4``.
The timed call is the whole ``svimg.sample`` (prior, CG data step and
re-noising); seconds per NFE = median time / nfe.

Peak memory
-----------
CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the call.
CPU: tracemalloc does not see torch's allocations, so each measurement runs
in a fresh Python process (this file run as a script) and reads the kernel's
peak resident set size: ``/proc/self/clear_refs`` resets the high-water mark
(VmHWM) after the prior, the data and ``y`` are loaded, and the peak is VmHWM
after the call minus VmRSS before it.  glibc's dynamic mmap threshold is fixed
(``MALLOC_MMAP_THRESHOLD_``) so that freed tensors go back to the OS rather
than hiding in the heap.  Two processes per T: the whole ``sample`` call, and
one prior call on ``batch_size`` frames (the prior's share, flat in T by
construction); the rest of the sampler's memory is a few volumes of
T x 3 x 64 x 64 float32, reported alongside.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

FRAMES = [4, 8, 16, 32, 64]
SIZE = 64
BATCH_SIZE = 4
NFE = 4
ROUNDS = 2
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "262144"}


def _prior(device: str):
    """The bundled prior on ``device`` (moved the way the sampler moves it)."""
    from svimg.sampling._common import resolve_prior

    return resolve_prior(None, torch.device(device))


def _problem(frames: int, device: str):
    """A measurement y = A x of a random video in [0, 1] and the operator A (content does not change the cost)."""
    import svimg
    from svimg.ops import TemporalPSF

    op = TemporalPSF(7)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(frames, 3, SIZE, SIZE, generator=g)
    return svimg.forward_op(x, op).to(device), op


def _run_sample(y, op, prior, device: str):
    import svimg

    return svimg.sample(y, op, prior, nfe=NFE, seed=0, batch_size=BATCH_SIZE, device=device, progress=False)


def _run_prior(prior, device: str):
    g = torch.Generator().manual_seed(0)
    x = (2 * torch.rand(BATCH_SIZE, 3, SIZE, SIZE, generator=g) - 1).to(device)
    with torch.no_grad():
        return prior.eps(x, torch.full((BATCH_SIZE,), 500, dtype=torch.int64, device=device))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_rss(frames: int, part: str) -> dict:
    """Peak RSS growth (MiB) of one ``part`` ("sample" or "prior") call in this process (see module docstring)."""
    prior = _prior("cpu")
    y, op = _problem(frames, "cpu")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    out = _run_sample(y, op, prior, "cpu") if part == "sample" else _run_prior(prior, "cpu")
    peak = _status_kib("VmHWM")
    del out
    return {"frames": frames, "part": part, "rss_before_mib": before / 1024, "peak_delta_mib": (peak - before) / 1024}


def _rss_in_subprocess(frames: int, part: str) -> float:
    cmd = [sys.executable, __file__, "--frames", str(frames), "--part", part]
    env = {**os.environ, **MALLOC_ENV, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_delta_mib"]


def _can_reset_peak() -> bool:
    return os.access("/proc/self/clear_refs", os.W_OK)


@pytest.fixture(scope="module")
def cpu_prior():
    try:
        return _prior("cpu")
    except (FileNotFoundError, ImportError, AttributeError) as exc:
        pytest.skip(f"no bundled prior to benchmark: {exc}")


@pytest.mark.parametrize("frames", FRAMES)
def test_sampler_cpu(benchmark, cpu_prior, frames):
    y, op = _problem(frames, "cpu")
    benchmark.group = f"sample cpu {SIZE}x{SIZE} batch_size={BATCH_SIZE} nfe={NFE}"
    info = dict(frames=frames, size=SIZE, batch_size=BATCH_SIZE, nfe=NFE, device="cpu",
                volume_mib=frames * 3 * SIZE * SIZE * 4 / 2**20, torch_threads=torch.get_num_threads())
    if _can_reset_peak():
        info.update(memory_measure="peak RSS growth in a fresh process (VmHWM - VmRSS)",
                    peak_mib=_rss_in_subprocess(frames, "sample"), prior_peak_mib=_rss_in_subprocess(frames, "prior"))
    else:
        info.update(memory_measure="not measured (/proc/self/clear_refs is not writable)")
    benchmark.extra_info.update(info)
    benchmark.pedantic(_run_sample, args=(y, op, cpu_prior, "cpu"), rounds=ROUNDS, iterations=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("frames", FRAMES)
def test_sampler_cuda(benchmark, frames):
    try:
        prior = _prior("cuda")
    except (FileNotFoundError, ImportError, AttributeError) as exc:
        pytest.skip(f"no bundled prior to benchmark: {exc}")
    y, op = _problem(frames, "cuda")

    def peak(fn, *args):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn(*args)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    def run():
        _run_sample(y, op, prior, "cuda")
        torch.cuda.synchronize()

    benchmark.group = f"sample cuda {SIZE}x{SIZE} batch_size={BATCH_SIZE} nfe={NFE}"
    benchmark.extra_info.update(
        frames=frames, size=SIZE, batch_size=BATCH_SIZE, nfe=NFE, device="cuda",
        volume_mib=frames * 3 * SIZE * SIZE * 4 / 2**20, memory_measure="torch.cuda.max_memory_allocated growth",
        peak_mib=peak(_run_sample, y, op, prior, "cuda"), prior_peak_mib=peak(_run_prior, prior, "cuda"),
    )
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="memory worker: peak RSS growth of one sampler or prior call")
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--part", choices=("sample", "prior"), required=True)
    args = parser.parse_args()
    print(json.dumps(measure_rss(args.frames, args.part)))
