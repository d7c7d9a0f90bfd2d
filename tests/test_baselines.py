"""The paper's baselines (svimg.baselines) and the ADMM-TV solver (svimg.solvers.admm_tv)."""

import json
import math

import numpy as np
import pytest
import torch

import svimg
from svimg import baselines
from svimg.ops import Downsample, GaussianBlur, TemporalPSF
from svimg.priors.analytic import GaussianPrior
from svimg.solvers.admm_tv import admm_tv, finite_difference, finite_difference_adjoint, soft_threshold, tv_dims



def moving_clip(T=8, C=3, S=16):
    """A smooth pattern drifting across the frame, values in [0.2, 0.8]."""
    t = torch.arange(T, dtype=torch.float64)[:, None, None, None]
    c = torch.arange(C, dtype=torch.float64)[None, :, None, None]
    yy = torch.arange(S, dtype=torch.float64)[None, None, :, None]
    xx = torch.arange(S, dtype=torch.float64)[None, None, None, :]
    wave = torch.sin(4 * math.pi * (xx - 1.5 * t) / S + c) * torch.cos(2 * math.pi * yy / S + 0.3 * t)
    return (0.5 + 0.3 * wave).float()


def psnr(x, ref):
    return float(-10 * torch.log10(((torch.as_tensor(x) - ref) ** 2).mean()))


def residual(x, op, y):
    return float(torch.linalg.vector_norm(op.forward(torch.as_tensor(x)) - y))


OP = TemporalPSF(7, boundary="zero")
X = moving_clip()
Y = OP.forward(X)
PRIOR = GaussianPrior(mean=0.0, std=0.5)

BASELINES = {
    "cg_only": lambda y, op: baselines.cg_only(y, op),
    "admm_tv": lambda y, op: baselines.admm_tv(y, op),
    # Step size scaled to this tiny clip: DPS's gradient has unit size whatever the number of pixels.
    "dps": lambda y, op: baselines.dps(y, op, PRIOR, nfe=1000, step_size=3.0, seed=0, progress=False),
    "diffusion_mbir": lambda y, op: baselines.diffusion_mbir(y, op, PRIOR, nfe=50, seed=0, progress=False),
}


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_reduces_the_residual_and_beats_the_measurement(name):
    x = BASELINES[name](Y, OP)
    assert x.shape == X.shape and isinstance(x, torch.Tensor)
    assert residual(x, OP, Y) < 0.3 * residual(Y, OP, Y)
    assert psnr(x, X) > psnr(Y, X) + 1.0


@pytest.mark.parametrize("name", list(BASELINES))
def test_baselines_return_the_input_type_with_provenance(name):
    xr = pytest.importorskip("xarray")
    op = Downsample(2) @ TemporalPSF(3)
    y = xr.DataArray(op.forward(X[:4]).numpy(), dims=("t", "c", "y", "x"))
    fast = {"dps": {"nfe": 5}, "diffusion_mbir": {"nfe": 5}}.get(name, {})
    fn = getattr(baselines, name)
    out = fn(y, op, PRIOR, seed=0, progress=False, **fast) if fast else fn(y, op)
    assert isinstance(out, xr.DataArray) and out.shape == (2, 3, 16, 16)  # aligned with y's 2 frames
    assert out.attrs["svimg_operation"] == f"baselines.{name}"


def test_cg_only_defaults_to_the_samplers_total_iterations():
    xr = pytest.importorskip("xarray")
    op = GaussianBlur(5, 1.0) @ TemporalPSF(3)
    y = op.forward(X)
    out = baselines.cg_only(xr.DataArray(y.numpy(), dims=("t", "c", "y", "x")), op)
    assert json.loads(out.attrs["svimg_parameters"])["n_iter"] == 20 * 5
    lead, trail = op.margins  # cg_only returns the frames aligned with y, cg_solve all of x
    full = svimg.cg_solve(op, y, n_iter=100).clamp(0, 1)
    np.testing.assert_allclose(out.values, full[lead:full.shape[0] - trail].numpy(), atol=1e-6)


def test_dps_chunked_gradient_equals_the_whole_video_gradient():
    op = TemporalPSF(3)
    whole = baselines.dps(Y[:5], op, PRIOR, nfe=20, seed=1, progress=False)
    chunked = baselines.dps(Y[:5], op, PRIOR, nfe=20, seed=1, progress=False, batch_size=2)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)


def test_dps_needs_a_differentiable_prior():
    class Detached(GaussianPrior):
        def eps(self, x_t, t):
            return super().eps(x_t, t).detach()

    with pytest.raises(RuntimeError, match="differentiable"):
        baselines.dps(Y, OP, Detached(), nfe=2, seed=0, progress=False)


def test_diffusion_baselines_are_deterministic_given_a_seed():
    a = baselines.diffusion_mbir(Y, OP, PRIOR, nfe=10, seed=4, progress=False)
    assert torch.equal(a, baselines.diffusion_mbir(Y, OP, PRIOR, nfe=10, seed=4, progress=False))
    b = baselines.dps(Y, OP, PRIOR, nfe=10, seed=4, progress=False)
    assert torch.equal(b, baselines.dps(Y, OP, PRIOR, nfe=10, seed=4, progress=False))


@pytest.mark.parametrize("call, exc, msg", [
    (lambda: baselines.admm_tv(Y, OP, rho=0.0), ValueError, "rho"),
    (lambda: baselines.admm_tv(Y, OP, lam=-1.0), ValueError, "lam"),
    (lambda: baselines.admm_tv(Y, OP, axes="tz"), ValueError, "axes"),
    (lambda: baselines.cg_only(Y, OP, n_iter=-1), ValueError, "n_iter"),
    (lambda: baselines.dps(Y, OP, PRIOR, step_size=-1.0), ValueError, "step_size"),
    (lambda: baselines.dps(Y, OP, PRIOR, nfe=0), ValueError, "nfe"),
    (lambda: baselines.diffusion_mbir(Y, OP, PRIOR, eta=2.0), ValueError, "eta"),
    (lambda: baselines.diffusion_mbir(Y, OP, PRIOR, noise="frame"), ValueError, "noise"),
])
def test_bad_arguments_raise(call, exc, msg):
    with pytest.raises(exc, match=msg):
        call()


# the ADMM-TV solver ------------------------------------------------------------------------------
@pytest.mark.parametrize("axes", ["t", "yx", "tyx"])
def test_difference_adjoint_passes_the_dot_test(axes):
    dims = tv_dims(axes)
    g = torch.Generator().manual_seed(0)
    u = torch.randn(5, 2, 6, 7, generator=g, dtype=torch.float64)
    v = tuple(torch.randn(d.shape, generator=g, dtype=torch.float64) for d in finite_difference(u, dims))
    lhs = sum(float((a * b).sum()) for a, b in zip(finite_difference(u, dims), v))
    rhs = float((u * finite_difference_adjoint(v, dims, u.shape)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_differences_and_soft_threshold_values():
    x = torch.tensor([1.0, 3.0, 2.0]).reshape(3, 1, 1, 1)
    (d,) = finite_difference(x, (0,))
    assert d.flatten().tolist() == [2.0, -1.0]
    assert finite_difference_adjoint((d,), (0,), x.shape).flatten().tolist() == [-2.0, 3.0, -1.0]
    assert soft_threshold(torch.tensor([-2.0, -0.5, 0.3, 1.5]), 1.0).tolist() == [-1.0, 0.0, 0.0, 0.5]


def test_admm_without_tv_solves_least_squares():
    op = TemporalPSF(3, boundary="circular")  # invertible: least squares recovers X
    x, _ = admm_tv(op, op.forward(X.double()), torch.zeros_like(X, dtype=torch.float64), lam=0.0, rho=0.01,
                   n_iter=30, cg_iters=20, tol=1e-12)
    torch.testing.assert_close(x, X.double(), rtol=0, atol=1e-5)


def test_admm_tv_weight_lowers_total_variation():
    noisy = Y + 0.05 * torch.randn(Y.shape, generator=torch.Generator().manual_seed(0))
    tv = [float(sum(d.abs().sum() for d in finite_difference(baselines.admm_tv(noisy, OP, lam=lam), (0, 2, 3))))
          for lam in (1e-3, 1e-1)]
    assert tv[1] < tv[0]


def test_admm_split_carries_over_between_calls():
    y, x0 = Y.double(), torch.zeros_like(X, dtype=torch.float64)
    two, _ = admm_tv(OP, y, x0, n_iter=2, cg_iters=4, dims=(0,), rho=0.1)
    one, split = admm_tv(OP, y, x0, n_iter=1, cg_iters=4, dims=(0,), rho=0.1)
    again, _ = admm_tv(OP, y, one, n_iter=1, cg_iters=4, dims=(0,), rho=0.1, split=split)
    torch.testing.assert_close(again, two, rtol=0, atol=1e-12)
