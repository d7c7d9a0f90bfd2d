"""``svimg.cg_solve``: 5 CG iterations on the paper's six degradations, 16 frames of 3 x 256 x 256.

Temporal: uniform width 7, uniform width 13, Gaussian sigma 1 (circular
boundary); spatio-temporal: uniform 7 followed by GaussianBlur(13, 2),
Downsample(4) or RandomMask(0.5).  ``tol=0`` makes every case run exactly 5
iterations (6 normal-operator applications).  The temporal kernel backend is
forced per case (Cython and dense torch on the CPU, Triton on CUDA), so the
table shows how much of the solve the kernel choice moves.
"""

from __future__ import annotations

import pytest
import torch

import svimg
from svimg.ops import Downsample, GaussianBlur, RandomMask, TemporalPSF

SHAPE = (16, 3, 256, 256)
N_ITER = 5
ROUNDS = 3  # a GaussianBlur solve takes seconds on the CPU; 3 timed solves per case keep the suite short
TASKS = {
    "temporal uniform 7": lambda: TemporalPSF(7),
    "temporal uniform 13": lambda: TemporalPSF(13),
    "temporal Gaussian 1": lambda: TemporalPSF.gaussian(1.0),
    "uniform 7 + GaussianBlur(13, 2)": lambda: GaussianBlur(13, 2.0) @ TemporalPSF(7),
    "uniform 7 + Downsample(4)": lambda: Downsample(4) @ TemporalPSF(7),
    "uniform 7 + RandomMask(0.5)": lambda: RandomMask(0.5, seed=0) @ TemporalPSF(7),
}


def _case(benchmark, backend, device, backend_name, task):
    backend(backend_name)
    op = TASKS[task]()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(SHAPE, generator=g).to(device)
    y = svimg.forward_op(x, op)

    def run():
        out, history = svimg.cg_solve(op, y, n_iter=N_ITER, tol=0.0, return_history=True)
        if device == "cuda":
            torch.cuda.synchronize()
        return history

    history = run()
    assert len(history) == N_ITER + 1, f"CG stopped after {len(history) - 1} iterations"
    benchmark.group = f"cg_solve {device} {'x'.join(map(str, SHAPE))}"
    benchmark.extra_info.update(
        task=task, op=repr(op), backend=backend_name, device=device, shape=list(SHAPE), n_iter=N_ITER,
        relative_residual=history[-1] / history[0],
    )
    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)


@pytest.mark.parametrize("backend_name", ["cython", "torch"])
@pytest.mark.parametrize("task", list(TASKS))
def test_cg_cpu(benchmark, backend, task, backend_name):
    _case(benchmark, backend, "cpu", backend_name, task)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend_name", ["triton", "torch"])
@pytest.mark.parametrize("task", list(TASKS))
def test_cg_cuda(benchmark, backend, task, backend_name):
    _case(benchmark, backend, "cuda", backend_name, task)
