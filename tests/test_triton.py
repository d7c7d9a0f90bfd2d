"""Triton kernels against the torch reference: temporal band apply and fused CG.

Without a GPU these run on CPU tensors through Triton's interpreter
(``TRITON_INTERPRET=1``, set by conftest.py before triton is imported), which
is slow: sizes are tiny and the tile size is forced small (``block_p=16``,
``frames=3``) so that partial pixel tiles and partial frame chunks occur.
With CUDA they run compiled on the GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import svimg
from svimg import _dispatch
from svimg.ops import BOUNDARIES, Downsample, TemporalPSF
from svimg.solvers.cg import conjugate_gradient, normal_system

pytestmark = pytest.mark.triton
tt = pytest.importorskip("svimg._kernels.triton_temporal")
tcg = pytest.importorskip("svimg._kernels.triton_cg")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not tt.INTERPRETED:
    pytest.skip("no CUDA and the Triton kernels were not built for the interpreter", allow_module_level=True)

ASYM = [1.0, 2.0, 3.0, 5.0]  # even length and not symmetric: M, M^T and M^T M all differ
SMALL_TILES = dict(block_p=16, frames=3)
P = 37  # not a multiple of the 16-pixel tile
#: comparison tolerance per storage dtype: float rounding of the same float32 (float64) sums
TOL = {torch.float16: 1e-3, torch.bfloat16: 8e-3, torch.float32: 1e-6, torch.float64: 1e-13}


def _rand(shape, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=DEVICE, dtype=dtype)


def _dense(M: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """The torch backend's reference: dense M @ x in float32 (float64), rounded to x's dtype."""
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    return (torch.tensor(M, dtype=work, device=x.device) @ x.to(work)).to(x.dtype)


def _matrices(op: TemporalPSF, T: int) -> dict:
    """The T x T matrices the operator sends a kernel ("valid": the zero rule's square one, whose incomplete rows
    it drops afterwards, and M^T M once there is a complete exposure)."""
    if op.boundary == "valid":
        S = op._square(T)
        return {"forward": S, "adjoint": S.T, **({"normal": op._normal_matrix(T)} if T > sum(op.margins) else {})}
    M = op.matrix(T)
    return {"forward": M, "adjoint": M.T, "normal": M.T @ M}


@pytest.mark.parametrize("T", [1, 3, 8], ids=lambda T: f"T{T}")  # T=1 and T=3 are shorter than the kernel
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_band_apply_matches_dense_float32(boundary, T):
    """Forward, adjoint and normal tables of every boundary, odd sizes, partial tiles."""
    op = TemporalPSF(kernel=ASYM, boundary=boundary)
    x = _rand((T, P), T)
    for name, M in _matrices(op, T).items():
        got = tt.band_apply(x, *_dispatch.ell_form(M), **SMALL_TILES)
        torch.testing.assert_close(got, _dense(M, x), rtol=TOL[x.dtype], atol=TOL[x.dtype], msg=name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_band_apply_storage_dtypes(dtype):
    """Half types accumulate in float32 and round once: at most one unit in the last place off the reference."""
    op = TemporalPSF.gaussian(1.0, boundary="zero")
    x = _rand((6, P), 1, dtype)
    M = _matrices(op, 6)["normal"]
    got = tt.band_apply(x, *_dispatch.ell_form(M), **SMALL_TILES)
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, _dense(M, x), rtol=TOL[dtype], atol=TOL[dtype])


def test_band_apply_default_tiling_and_input_untouched():
    op = TemporalPSF(3, boundary="reflect")
    x = _rand((5, 2 * P), 2)
    before = x.clone()
    M = op.matrix(5)
    got = tt.band_apply(x, *_dispatch.ell_form(M))
    torch.testing.assert_close(got, _dense(M, x), rtol=TOL[x.dtype], atol=TOL[x.dtype])
    assert torch.equal(x, before)


def test_band_apply_rejects_bad_input():
    cols, weights = _dispatch.ell_form(TemporalPSF(3, boundary="circular").matrix(4))  # 4 x 4
    x = _rand((4, 8), 0)
    with pytest.raises(ValueError, match="do not fit 5 frames"):
        tt.band_apply(_rand((5, 8), 0), cols, weights)
    with pytest.raises(ValueError, match="out of range"):
        tt.band_apply(x, cols + 1, weights)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        tt.band_apply(x.long(), cols, weights)
    with pytest.raises(ValueError, match=r"\(T, P\) tensor"):
        tt.band_apply(x.reshape(4, 2, 4), cols, weights)
    with pytest.raises(ValueError, match="power of two"):
        tt.band_apply(x, cols, weights, block_p=24)
    with pytest.raises(ValueError, match="frames must be a positive integer"):
        tt.band_apply(x, cols, weights, frames=0)
    with pytest.raises(ValueError, match="at most"):
        tt.tiling(4 * tt.MAX_PARTIALS, 32, torch.device(DEVICE), block_p=16, frames=1)


def test_tiling_covers_the_volume():
    for T, P_ in [(1, 1), (16, 196608), (300, 5), (7, 10**8)]:
        t = tt.tiling(T, P_, torch.device("cpu"))
        assert t.grid[0] * t.block_p >= P_ and t.grid[1] * t.frames >= T
        assert (t.grid[0] - 1) * t.block_p < P_ and (t.grid[1] - 1) * t.frames < T
        assert t.n_programs <= tt.MAX_PARTIALS


def test_public_api_runs_triton_through_dispatch(monkeypatch):
    """forward_op / adjoint_op / op.normal with SVIMG_BACKEND=triton equal the torch backend's results."""
    op = TemporalPSF(kernel=ASYM, boundary="replicate")
    x = _rand((5, 2, 3, 3), 3)
    results = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("SVIMG_BACKEND", backend)
        assert _dispatch.backend_for(x) == backend
        results[backend] = [svimg.forward_op(x, op), svimg.adjoint_op(x, op), op.normal(x)]
    for ref, got in zip(*results.values()):
        torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------ fused CG


def _cg_both(monkeypatch, op, y, x0, n_iter, gamma, tol, **cg_kwargs):
    """cg_solve under the torch and the triton backend: {backend: (x, history, callback log)}."""
    out = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("SVIMG_BACKEND", backend)
        log = []
        x, hist = svimg.cg_solve(op, y, x0, n_iter=n_iter, gamma=gamma, tol=tol, return_history=True,
                                 callback=lambda k, xk, rk: log.append((k, rk)), **cg_kwargs)
        out[backend] = (x, hist, log)
    return out


@pytest.mark.parametrize(
    "op, gamma",
    [
        (TemporalPSF(kernel=ASYM, boundary="zero"), None),
        (0.5 * TemporalPSF(3, boundary="reflect"), 2.0),  # scaled and gamma-regularised
    ],
    ids=["normal", "scaled-gamma"],
)
def test_fused_cg_matches_torch_cg_float64(monkeypatch, op, gamma):
    """Same iterates and residual norms as the torch CG (float64: to 1e-10)."""
    x_true = _rand((7, 2, 2, 3), 4, torch.float64)
    y = op.forward(x_true)
    x0 = _rand(x_true.shape, 5, torch.float64)
    res = _cg_both(monkeypatch, op, y, x0, 6, gamma, 0.0)
    (x_ref, h_ref, log_ref), (x_got, h_got, log_got) = res["torch"], res["triton"]
    assert len(h_got) == len(h_ref) == 7
    np.testing.assert_allclose(h_got, h_ref, rtol=1e-10)
    torch.testing.assert_close(x_got, x_ref, rtol=1e-10, atol=1e-10)
    assert [k for k, _ in log_got] == [k for k, _ in log_ref] == list(range(1, 7))


def test_fused_cg_matches_torch_cg_float32_and_stops_at_tol(monkeypatch):
    """float32, the sampler's regularised system: same stopping iteration under a tolerance."""
    op = TemporalPSF(kernel=ASYM, boundary="zero")  # 10 distinct eigenvalues: no early exact convergence
    x_true = _rand((10, 1, 2, 3), 6)
    y = op.forward(x_true)
    x0 = _rand(x_true.shape, 7)
    full = _cg_both(monkeypatch, op, y, x0, 4, 1.0, 0.0)["torch"][1]
    tol = float(np.sqrt(full[2] * full[3]))  # between the 2nd and 3rd residuals: stop after 3 iterations
    res = _cg_both(monkeypatch, op, y, x0, 8, 1.0, tol)
    (x_ref, h_ref, log_ref), (x_got, h_got, log_got) = res["torch"], res["triton"]
    assert len(h_ref) == len(h_got) == 4 and len(log_got) == 3
    np.testing.assert_allclose(h_got, h_ref, rtol=1e-5)
    torch.testing.assert_close(x_got, x_ref, rtol=1e-5, atol=1e-6)


def test_fused_cg_is_used_and_reproducible(monkeypatch):
    """The fused path never calls op.normal, and two runs agree bit for bit."""
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    op = TemporalPSF(3, boundary="zero")
    y = _rand((5, 1, 2, 4), 8)

    def forbidden(self, v):
        raise AssertionError("the fused CG path must not call op.normal")

    H, b = normal_system(op, y, None, None)
    monkeypatch.setattr(TemporalPSF, "normal", forbidden)
    first = conjugate_gradient(H, b, torch.zeros_like(b), 4, 0.0)
    second = conjugate_gradient(H, b, torch.zeros_like(b), 4, 0.0)
    assert torch.equal(first[0], second[0]) and first[1] == second[1]


def test_fused_cg_small_tiles_match_default_tiles():
    """Many programs and partial tiles (block partial sums of 3 x 2 programs) give the same solve."""
    M = np.eye(5) + TemporalPSF(kernel=ASYM, boundary="circular")._normal_matrix(5)
    cols, weights = _dispatch.ell_form(M)
    b, x0 = _rand((5, P), 9), _rand((5, P), 10)
    states = [tcg.FusedCG(cols, weights, b, x0, **kw) for kw in ({}, SMALL_TILES)]
    assert states[1].tiles.n_programs == 6
    for s in states:
        s.start()
        for _ in range(3):
            s.step()
    torch.testing.assert_close(states[1].x, states[0].x, rtol=1e-5, atol=1e-6)
    assert not torch.equal(states[0].x, x0)


class _TimeOnly:
    """A system H = c I along time, with the attribute the fused path looks for."""

    def __init__(self, c):
        self.c = c

    def __call__(self, v):
        return self.c * v

    def time_matrix(self, T):
        return self.c * np.eye(T)


@pytest.mark.parametrize("c", [0.0, -1.0], ids=["zero-curvature", "negative-curvature"])
def test_fused_cg_stops_without_positive_curvature(monkeypatch, c):
    b, x0 = _rand((3, 1, 2, 2), 11), _rand((3, 1, 2, 2), 12)
    results = {}
    for backend in ("torch", "triton"):
        monkeypatch.setenv("SVIMG_BACKEND", backend)
        results[backend] = conjugate_gradient(_TimeOnly(c), b, x0, 3, 0.0)
    for x, hist in results.values():
        assert torch.equal(x, x0) and len(hist) == 1
    assert results["torch"][1] == pytest.approx(results["triton"][1], rel=1e-6)


def test_composed_operator_keeps_the_torch_engine(monkeypatch):
    """A spatio-temporal system is not one time matrix: CG runs the torch engine on Triton band kernels."""
    op = Downsample(2) @ TemporalPSF(3)
    y = _rand((4, 1, 2, 2), 13)
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    H, b = normal_system(op, y, None, None)
    assert H.time_matrix(4) is None
    got = svimg.cg_solve(op, y, n_iter=3)
    monkeypatch.setenv("SVIMG_BACKEND", "torch")
    torch.testing.assert_close(got, svimg.cg_solve(op, y, n_iter=3), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ compiled for a real GPU


def test_kernels_compile_for_cuda_without_a_gpu():
    """Every kernel compiles with Triton's CUDA backend (sm_90) in a subprocess without the interpreter,
    and the band kernel's pixel rows move as 128-bit vector loads/stores (coalesced)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    script = Path(__file__).with_name("_triton_aot.py")
    run = subprocess.run([sys.executable, str(script), "--arch", "90", "--dtypes", "float32", "bfloat16"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 8, run.stdout  # 4 kernels x 2 dtypes
    for line in lines:
        assert "ld.global.v4" in line and "st.global.v4" in line, line
