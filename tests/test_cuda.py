"""On a CUDA GPU: Triton kernels against the torch reference on real GPU tensors, the fused CG, and
sampler determinism.  Every test skips without CUDA (``benchmarks/gpu_run.sh`` runs them on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import svimg
from svimg import _dispatch
from svimg.ops import BOUNDARIES, TemporalPSF
from svimg.priors import GaussianPrior

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

#: tolerance per storage dtype: the same float32 sums in another order, rounded once
TOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-6}
#: every distinct table width W is one more compile: these share widths (7 and 4 taps) on purpose
OPS = [TemporalPSF(7), TemporalPSF.gaussian(1.0), TemporalPSF(kernel=[1.0, 2.0, 3.0, 5.0])]


def _volume(shape, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return torch.randn(shape, generator=g, device="cuda", dtype=torch.float32).to(dtype)


def test_cuda_tensors_default_to_triton():
    if _dispatch._module("triton") is None:
        pytest.skip("triton does not import")
    assert _dispatch.backend_for(torch.ones(2, device="cuda")) == "triton"


@pytest.mark.parametrize("dtype", list(TOL), ids=str)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("T", [1, 5, 33])
def test_triton_matches_torch_on_gpu(monkeypatch, T, boundary, dtype):
    """Forward, adjoint and fused normal of several PSFs, P = 3 * 45 * 77 (not a multiple of any tile)."""
    x = _volume((T, 3, 45, 77), dtype, seed=T)
    for op in OPS:
        op = TemporalPSF(kernel=op.kernel, boundary=boundary)
        results = {}
        for backend in ("torch", "triton"):
            monkeypatch.setenv("SVIMG_BACKEND", backend)
            results[backend] = [op.forward(x), op.adjoint(x), op.normal(x)]
        for ref, got in zip(results["torch"], results["triton"]):
            assert got.dtype == dtype and got.is_cuda
            torch.testing.assert_close(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * 4)


@pytest.mark.parametrize("gamma", [None, 1.0])
def test_fused_cg_matches_torch_cg_on_gpu(monkeypatch, gamma):
    op = TemporalPSF(7, boundary="reflect")
    x_true = _volume((16, 3, 32, 32), torch.float64, seed=1).abs()
    y = op.forward(x_true)
    out = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("SVIMG_BACKEND", backend)
        out[backend] = svimg.cg_solve(op, y, n_iter=10, gamma=gamma, tol=0.0, return_history=True)
    np.testing.assert_allclose(out["triton"][1], out["torch"][1], rtol=1e-9)
    torch.testing.assert_close(out["triton"][0], out["torch"][0], rtol=1e-9, atol=1e-9)


def test_fused_cg_is_bitwise_reproducible_on_gpu(monkeypatch):
    """Block partial sums without atomics: repeated float32 solves are identical."""
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    op = TemporalPSF(13)
    y = _volume((16, 3, 64, 64), torch.float32, seed=2)
    runs = [svimg.cg_solve(op, y, n_iter=5, gamma=1.0, return_history=True) for _ in range(3)]
    for x, hist in runs[1:]:
        assert torch.equal(x, runs[0][0]) and hist == runs[0][1]


def test_sampler_is_deterministic_on_cuda():
    """Same seed, same video, on the GPU (Triton data step, closed-form prior)."""
    op = TemporalPSF(7)
    y = op.forward(_volume((8, 3, 32, 32), torch.float32, seed=3).sigmoid())
    prior = GaussianPrior(mean=0.0, std=0.5, channels=3)
    runs = [svimg.sample(y, op, prior, nfe=10, seed=7, device="cuda", progress=False) for _ in range(2)]
    assert runs[0].is_cuda and torch.equal(runs[0], runs[1])
    other = svimg.sample(y, op, prior, nfe=10, seed=8, device="cuda", progress=False)
    assert not torch.equal(runs[0], other)
