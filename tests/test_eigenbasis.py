"""Separable operators as per-axis matrices, and the exact last data step solved in their eigenbasis."""

import json
import math

import numpy as np
import pytest
import torch

from svimg import forward_op
from svimg.ops import BOUNDARIES, Downsample, GaussianBlur, Identity, RandomMask, TemporalPSF
from svimg.priors.analytic import GaussianPrior
from svimg.sampling import DDSSchedule, sample
from svimg.sampling.data_step import FINAL_RTOL, DataStep
from svimg.solvers.eigenbasis import _untouched, eigenbasis_solve

SHAPE = (6, 2, 8, 8)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def dense(op, shape):
    """A as a matrix (columns = A applied to the unit vectors of ``shape``)."""
    n = math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
    return torch.stack([op.forward(b).reshape(-1) for b in basis], dim=1)


def kron_dense(factors, shape):
    """scale * (M_0 ⊗ M_1 ⊗ M_2 ⊗ M_3) as one matrix, identity on the axes not listed."""
    out = np.ones((1, 1))
    for axis, n in enumerate(shape):
        out = np.kron(out, factors.matrices.get(axis, np.eye(n)))
    return torch.as_tensor(factors.scale * out)


SEPARABLE = {
    **{f"temporal {b}": (lambda b=b: TemporalPSF(kernel=[1.0, 2.0, 0.5], boundary=b)) for b in BOUNDARIES},
    "blur": lambda: GaussianBlur(5, 1.0),
    "downsample": lambda: Downsample(2),
    "identity": lambda: Identity(),
    "blur @ temporal": lambda: GaussianBlur(5, 1.0) @ TemporalPSF(3),
    "scaled downsample @ temporal": lambda: 0.5 * (Downsample(2) @ TemporalPSF(3, boundary="zero")),
    "downsample @ blur @ temporal": lambda: Downsample(2) @ GaussianBlur(3, 0.7) @ TemporalPSF(3),
}


@pytest.mark.parametrize("name", list(SEPARABLE))
def test_kronecker_factors_are_the_operator(name):
    op = SEPARABLE[name]()
    torch.testing.assert_close(kron_dense(op.kronecker(SHAPE), SHAPE), dense(op, SHAPE), rtol=0, atol=1e-14)


def test_kronecker_factors_of_the_adjoint_are_the_transposes():
    op = Downsample(2) @ TemporalPSF(kernel=[1.0, 2.0, 0.5], boundary="replicate")
    out_shape = op.output_shape(SHAPE)
    torch.testing.assert_close(kron_dense(op.T.kronecker(out_shape), out_shape), dense(op, SHAPE).T, rtol=0,
                               atol=1e-14)


def test_a_mask_is_not_separable_and_neither_is_any_product_with_one():
    assert RandomMask(0.5).kronecker(SHAPE) is None
    assert (RandomMask(0.5) @ TemporalPSF(3)).kronecker(SHAPE) is None
    assert (GaussianBlur(3, 1.0) @ RandomMask(0.5)).kronecker(SHAPE) is None
    assert eigenbasis_solve(RandomMask(0.5), rand(*SHAPE), rand(*SHAPE, seed=1), FINAL_RTOL) is None


def test_an_invertible_operator_is_inverted_exactly():
    op = TemporalPSF(5, boundary="circular")  # over 6 frames: no zero in the kernel's DFT
    x_true = rand(*SHAPE)
    x, residual = eigenbasis_solve(op, forward_op(x_true, op), rand(*SHAPE, seed=1), FINAL_RTOL)
    torch.testing.assert_close(x, x_true, rtol=0, atol=1e-12)
    assert residual < 1e-12


@pytest.mark.parametrize("boundary", ["valid", "zero"])
def test_the_null_space_keeps_the_prior_and_the_rest_fits_the_data(boundary):
    """Downsample(2) @ TemporalPSF: x - x0 lies in range(A^T) (nothing added where A is blind) and A x = y;
    "valid": a rectangular temporal matrix (T - 2 rows for T unknown frames), blind to 2 more directions."""
    op = Downsample(2) @ TemporalPSF(3, boundary=boundary)
    assert op.kronecker(SHAPE).matrices[0].shape == (SHAPE[0] - sum(op.margins), SHAPE[0])
    y, x0 = forward_op(rand(*SHAPE), op), rand(*SHAPE, seed=1)
    x, residual = eigenbasis_solve(op, y, x0, FINAL_RTOL)
    A = dense(op, SHAPE)
    expected = x0.reshape(-1) + torch.linalg.pinv(A) @ (y.reshape(-1) - A @ x0.reshape(-1))  # min-norm correction
    torch.testing.assert_close(x.reshape(-1), expected, rtol=0, atol=1e-10)
    assert residual < 1e-10


def test_an_ill_conditioned_blur_stops_at_the_tolerance_and_leaves_its_weakest_components_alone():
    op = GaussianBlur(7, 2.0) @ TemporalPSF(5)
    y, x0 = forward_op(rand(*SHAPE), op), rand(*SHAPE, seed=1)
    x, residual = eigenbasis_solve(op, y, x0, 1e-4)
    H = dense(op, SHAPE).T @ dense(op, SHAPE)
    r = dense(op, SHAPE).T @ y.reshape(-1) - H @ x.reshape(-1)
    r0 = dense(op, SHAPE).T @ y.reshape(-1) - H @ x0.reshape(-1)
    assert residual == pytest.approx(float(r.norm() / r0.norm()), rel=1e-6)
    assert 1e-5 < residual <= 1e-4  # not more exact than asked: the weakest components stay at x0
    lam, q = torch.linalg.eigh(H)
    changed = (q.T @ (x - x0).reshape(-1)).abs() > 1e-9
    assert not changed.all() and changed.any()
    assert lam[changed].min() >= lam[~changed].max() * (1 - 1e-9)  # only the best-determined ones were solved


def test_untouched_takes_the_most_smallest_eigenvalues_the_budget_allows():
    lam = torch.tensor([4.0, 1.0, 3.0, 2.0, 0.0], dtype=torch.float64)
    energy = torch.tensor([40.0, 0.5, 9.0, 0.4, 0.05], dtype=torch.float64)  # total 49.95
    keep = _untouched(lam, energy, rtol=math.sqrt(1.0 / 49.95))  # budget 1.0: lambda 0, 1, 2 (0.95 in all)
    assert keep.tolist() == [False, True, False, True, True]
    assert _untouched(lam, energy, rtol=0.0).tolist() == [False, False, False, False, True]  # the null space stays


@pytest.mark.parametrize("make, method", [(lambda: GaussianBlur(5, 1.5) @ TemporalPSF(7), "eigenbasis"),
                                          (lambda: RandomMask(0.5) @ TemporalPSF(7), "cg")])
def test_the_exact_last_step_says_how_it_was_solved(make, method):
    xr = pytest.importorskip("xarray")
    op = make()
    y = forward_op(rand(12, 3, 8, 8), op)  # 6 complete exposures of 7 frames
    out = sample(xr.DataArray(y.numpy(), dims=("t", "c", "y", "x")), op, GaussianPrior(), nfe=3, seed=0,
                 noise_std=None, progress=False)
    params = json.loads(out.attrs["svimg_parameters"])
    assert params["final_step"] == method and params["final_relative_residual"] < FINAL_RTOL


def test_a_direct_solve_short_of_the_tolerance_is_polished_by_cg(monkeypatch):
    import svimg.solvers.eigenbasis as eigenbasis

    monkeypatch.setattr(eigenbasis, "_LAMBDA_FLOOR", 0.1)  # treat more components as blind than the data allow
    op = GaussianBlur(3, 0.5) @ TemporalPSF(3)
    y = forward_op(rand(6, 1, 8, 8), op)
    x0 = rand(6, 1, 8, 8, seed=3)
    _, short = eigenbasis.eigenbasis_solve(op, y, x0, FINAL_RTOL)
    step = DataStep(op, y, DDSSchedule(2), n_iter=5)
    step(x0, 0)
    assert short > FINAL_RTOL > step.final_residual and step.final_method == "eigenbasis + cg"


@pytest.mark.parametrize("make, commutes", [(lambda: GaussianBlur(5, 1.0) @ TemporalPSF(3), True),
                                            (lambda: Downsample(2) @ TemporalPSF(3, boundary="zero"), True),
                                            (lambda: Downsample(2) @ GaussianBlur(3, 0.7), False),
                                            (lambda: RandomMask(0.5) @ TemporalPSF(3), False)])
def test_factors_on_disjoint_axes_commute_in_the_normal_operator(make, commutes):
    op = make()
    x = rand(*SHAPE)
    assert op.commutes(SHAPE) is commutes
    torch.testing.assert_close(op.normal(x), op.adjoint(op.forward(x)), rtol=0, atol=1e-14)
