"""Conjugate gradients on the whole volume: the exact solution, CG's monotonicity, scipy's iterates, coupling."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from _opcheck import dense
from svimg import cg_solve
from svimg.ops import BOUNDARIES, Downsample, GaussianBlur, RandomMask, TemporalPSF
from svimg.solvers import conjugate_gradient

SHAPE = (8, 1, 2, 3)  # 48 unknowns: dense references stay cheap


def _randn(shape, seed):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def _iterates(op, y, **kwargs):
    """cg_solve's iterates x_1, x_2, ... (flattened numpy) through its callback, and its result."""
    seen = []
    x = cg_solve(op, y, callback=lambda k, xk, rk: seen.append(xk.reshape(-1).numpy()), **kwargs)
    return seen, x


OPERATORS = {
    **{f"gauss-{b}": TemporalPSF.gaussian(1.0, boundary=b) for b in BOUNDARIES},
    "uniform7-replicate": TemporalPSF(7, boundary="replicate"),
    "sr": Downsample(2) @ TemporalPSF(7, boundary="zero"),  # 12 measurements, 48 unknowns
    "inpaint-blur": RandomMask(0.5, seed=0) @ GaussianBlur(3, 1.0) @ TemporalPSF(3, boundary="reflect"),
}


@pytest.mark.parametrize("name", list(OPERATORS))
def test_converges_to_least_squares(name):
    """From x0 = 0, CG on A^T A x = A^T y reaches numpy's least-squares solution (the minimum-norm one when A has a
    null space: the iterates never leave range(A^T)); y is random, so not in range(A) when A is rank deficient."""
    op = OPERATORS[name]
    shape = (8, 1, 4, 6) if name == "sr" else SHAPE
    A = dense(op, shape)
    y = _randn(op.output_shape(shape), 1)
    expected = np.linalg.lstsq(A, y.reshape(-1).numpy(), rcond=None)[0]
    x = cg_solve(op, y, n_iter=3 * A.shape[1], tol=1e-13)
    np.testing.assert_allclose(x.reshape(-1).numpy(), expected, rtol=0, atol=1e-8 * np.abs(expected).max())


def test_full_rank_square_problem_is_inverted():
    """Circular Gaussian PSF on 8 frames: invertible, so CG recovers x exactly from noiseless y."""
    op = TemporalPSF.gaussian(1.0, boundary="circular")
    assert np.linalg.matrix_rank(op.matrix(8)) == 8
    x_true = _randn(SHAPE, 0)
    x = cg_solve(op, op.forward(x_true), n_iter=100, tol=1e-12)
    torch.testing.assert_close(x, x_true, rtol=0, atol=1e-9)


@pytest.mark.parametrize("gamma", [None, 0.3])
@pytest.mark.parametrize("name", ["gauss-zero", "uniform7-replicate", "inpaint-blur"])
def test_monotone_quantities(name, gamma):
    """What CG guarantees on an SPD system H x = b with solution x*: the error energy ||x_k - x*||_H and the error
    norm ||x_k - x*||_2 never increase.  On the normal equations (H = A^T A) the data misfit ||A x_k - y|| is the
    energy up to a constant, so it never increases either.  The CG residual ||b - H x_k|| itself is NOT monotone
    in general, so it is not tested."""
    op = OPERATORS[name]
    A = dense(op, SHAPE)
    y = _randn(op.output_shape(SHAPE), 1).reshape(-1).numpy()
    x0 = _randn(SHAPE, 2)
    if gamma is None:
        H, b = A.T @ A, A.T @ y
    else:
        H, b = np.eye(A.shape[1]) + gamma * A.T @ A, x0.reshape(-1).numpy() + gamma * A.T @ y
    x_star = np.linalg.lstsq(H, b, rcond=None)[0]
    iterates, _ = _iterates(op, torch.from_numpy(y).reshape(op.output_shape(SHAPE)), x0=x0, n_iter=15, gamma=gamma, tol=0)
    xs = [x0.reshape(-1).numpy()] + iterates
    errors = [x - x_star for x in xs]
    energy = [e @ H @ e for e in errors]
    slack = 1e-12 * energy[0]
    assert all(later <= earlier + slack for earlier, later in zip(energy, energy[1:]))
    assert energy[-1] < 0.1 * energy[0]  # and it does go down
    norms = [np.linalg.norm(e) for e in errors]
    assert all(later <= earlier + 1e-9 * norms[0] for earlier, later in zip(norms, norms[1:]))
    if gamma is None:
        misfit = [np.linalg.norm(A @ x - y) for x in xs]
        assert all(later <= earlier + 1e-9 * misfit[0] for earlier, later in zip(misfit, misfit[1:]))


@pytest.mark.parametrize(
    "name, gamma",
    [("gauss-circular", None), ("gauss-circular", 0.5), ("gauss-reflect", None), ("gauss-reflect", 0.5),
     ("inpaint-blur", None), ("inpaint-blur", 0.5), ("sr", 0.5)],
)
def test_matches_scipy_iterate_for_iterate(name, gamma):
    """Same system, same start: every iterate equals scipy.sparse.linalg.cg's (dense H from op.matrix or probing).

    Not ("sr", None): A^T A there is singular with a few clustered eigenvalues, and near convergence CG's iterates
    amplify the last-bit difference between a dense product and the operator about 100-fold per step (both runs
    still end at the same solution, which test_converges_to_least_squares checks)."""
    op = OPERATORS[name]
    shape = (8, 1, 4, 6) if name == "sr" else SHAPE
    if isinstance(op, TemporalPSF):  # H from the T x T matrix: M^T M on every pixel's time series
        M = op.matrix(shape[0])
        A = np.kron(M, np.eye(int(np.prod(shape[1:]))))
    else:
        A = dense(op, shape)
    y = _randn(op.output_shape(shape), 1)
    x0 = _randn(shape, 2)
    yv, x0v = y.reshape(-1).numpy(), x0.reshape(-1).numpy()
    if gamma is None:
        H, b = A.T @ A, A.T @ yv
    else:
        H, b = np.eye(A.shape[1]) + gamma * A.T @ A, x0v + gamma * A.T @ yv
    n_iter = 10
    expected = []
    spla.cg(H, b, x0=x0v, rtol=0.0, atol=0.0, maxiter=n_iter, callback=lambda xk: expected.append(xk.copy()))
    got, x = _iterates(op, y, x0=x0, n_iter=n_iter, gamma=gamma, tol=0)
    assert len(got) == len(expected) == n_iter
    for k, (g, e) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9 * np.abs(e).max(), err_msg=f"iterate {k}")
    np.testing.assert_array_equal(x.reshape(-1).numpy(), got[-1])


def test_gamma_form_solves_regularised_system():
    """(I + gamma A^T A) x = x0 + gamma A^T y, DDS's data step, solved exactly."""
    op = Downsample(2) @ TemporalPSF(7, boundary="zero")
    shape = (8, 1, 4, 6)
    A = dense(op, shape)
    y, x0, gamma = _randn(op.output_shape(shape), 1), _randn(shape, 2), 0.7
    rhs = x0.reshape(-1).numpy() + gamma * A.T @ y.reshape(-1).numpy()
    expected = np.linalg.solve(np.eye(A.shape[1]) + gamma * A.T @ A, rhs)
    x = cg_solve(op, y, x0=x0, gamma=gamma, n_iter=200, tol=1e-12)
    np.testing.assert_allclose(x.reshape(-1).numpy(), expected, rtol=0, atol=1e-9)


def _framewise_cg(H, b, x0, n_iter):
    """CG with inner products per frame (dim 0 treated as a batch of independent problems, as image toolkits do)."""

    def dot(a, c):
        return (a * c).sum(dim=(1, 2, 3), keepdim=True)

    x, r = x0.clone(), b - H(x0)
    p, rs = r.clone(), dot(r, r)
    for _ in range(n_iter):
        Hp = H(p)
        alpha = rs / dot(p, Hp)
        x, r = x + alpha * p, r - alpha * Hp
        rs_new = dot(r, r)
        p, rs = r + (rs_new / rs) * p, rs_new
    return x


def test_whole_volume_coupling():
    """The temporal PSF couples frames: CG with volume-wide inner products finds the true solution, a frame-by-frame
    CG (a different algorithm on a coupled system) does not, and ends much farther from it."""
    op = TemporalPSF.gaussian(1.0, boundary="zero")
    shape = (12, 1, 3, 3)
    A = dense(op, shape)
    y = _randn(shape, 3)
    truth = np.linalg.solve(A, y.reshape(-1).numpy())
    n_iter = 40
    ours = cg_solve(op, y, n_iter=n_iter, tol=1e-12).reshape(-1).numpy()
    framewise = _framewise_cg(op.normal, op.adjoint(y), torch.zeros(shape, dtype=torch.float64), n_iter)
    framewise = framewise.reshape(-1).numpy()
    err_ours = np.linalg.norm(ours - truth) / np.linalg.norm(truth)
    err_frames = np.linalg.norm(framewise - truth) / np.linalg.norm(truth)
    assert err_ours < 1e-8
    assert err_frames > 1e-3 and err_frames > 1e4 * err_ours


def test_stopping_rule_and_history():
    op = TemporalPSF.gaussian(1.0, boundary="circular")  # full rank: CG runs 5 iterations without converging
    y = op.forward(_randn(SHAPE, 0))
    x, history = cg_solve(op, y, n_iter=200, tol=1e-6, return_history=True)
    assert history[-1] < 1e-6 <= min(history[:-1])  # stops at the first residual under tol
    assert len(history) < 200
    x5, history5 = cg_solve(op, y, n_iter=5, tol=0, return_history=True)
    assert len(history5) == 6 and history5[0] == pytest.approx(float(torch.linalg.vector_norm(op.adjoint(y))))
    x0 = _randn(SHAPE, 4)
    x_none, history0 = cg_solve(op, y, x0=x0, n_iter=0, return_history=True)
    assert torch.equal(x_none, x0) and len(history0) == 1


def test_callback_sees_each_iteration_and_can_stop():
    op = TemporalPSF(7, boundary="zero")
    y = _randn(SHAPE, 0)
    calls = []
    _, history = cg_solve(op, y, n_iter=4, tol=0, return_history=True, callback=lambda k, xk, rk: calls.append((k, rk)))
    assert calls == list(zip(range(1, 5), history[1:]))

    class Stop(Exception):
        pass

    def stop_at_two(k, xk, rk):
        if k == 2:
            raise Stop

    with pytest.raises(Stop):
        cg_solve(op, y, n_iter=10, callback=stop_at_two)


def test_float32_converges_to_float32_precision():
    op = TemporalPSF.gaussian(1.0, boundary="reflect")
    x_true = _randn(SHAPE, 0)
    y = op.forward(x_true).float()
    x = cg_solve(op, y, n_iter=50, tol=0)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.double(), x_true, rtol=0, atol=1e-4)


def test_conjugate_gradient_on_a_plain_matrix():
    """The solver itself, on a 2-D SPD matrix function: n steps solve an n x n system, x0 is not modified."""
    rng = np.random.default_rng(0)
    B = rng.standard_normal((6, 6))
    S = torch.from_numpy(B @ B.T + 6 * np.eye(6))
    b = torch.from_numpy(rng.standard_normal(6))
    x0 = torch.zeros(6, dtype=torch.float64)
    x, history = conjugate_gradient(lambda v: S @ v, b, x0, n_iter=6, tol=0)
    torch.testing.assert_close(x, torch.linalg.solve(S, b), rtol=0, atol=1e-10)
    assert torch.equal(x0, torch.zeros(6, dtype=torch.float64)) and len(history) == 7
