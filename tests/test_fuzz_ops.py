"""Property tests over random operators: random chains of random factors, random kernels, random matrices.

test_ops.py and test_cg.py check a fixed list of named operators (dot test, linearity, scipy references,
CG on chosen systems).  Here hypothesis draws the operators themselves: chains of 1-4 factors in random
order (temporal PSFs with random, possibly negative, non-normalised taps and any boundary; Gaussian
blurs; 2x/3x pooling and its adjoint; masks with random real weights; scalings; adjoint views), on
volumes whose T may be 1 or shorter than the kernels.  Properties: exact adjoint, linearity,
composition (the chain equals the factors applied one by one, for forward, adjoint and the fused
normal), the algebra ((AB)^T = B^T A^T, associativity, scalars), shape round trips, CG's error
energy on random SPD systems, and the Cython kernel against the torch reference on random banded
and non-banded matrices.

Default run: ``max_examples`` 20 (profile "ci"); ``pytest -m slow`` repeats every property with the
"long" profile (400 examples).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _opcheck import DOT_RTOL, adjoint_gap, dense, norm
from svimg import _dispatch, cg_solve
from svimg.ops import BOUNDARIES, Downsample, GaussianBlur, Identity, Mask, TemporalPSF
from svimg.solvers import conjugate_gradient

settings.register_profile("svimg-fuzz-ci", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("svimg-fuzz-long", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = [pytest.param("svimg-fuzz-ci", id="ci"), pytest.param("svimg-fuzz-long", id="long", marks=pytest.mark.slow)]


def fuzz(profile: str, *strategies):
    """Run the decorated property now under hypothesis with ``profile``'s settings."""
    def run(prop):
        settings(settings.get_profile(profile))(given(*strategies)(prop))()
    return run


# ---------------------------------------------------------------- strategies

# Multiples of 1/8 in [-2, 2]: zeros, negative values and exact cancellations, but no subnormal taps whose
# results would carry no relative precision.
eighths = st.integers(-16, 16).map(lambda i: i / 8)


@st.composite
def temporal_psfs(draw) -> TemporalPSF:
    """Any kernel of 1-9 taps (negative taps, zero sums and all-zero kernels included), any boundary."""
    taps = draw(st.lists(eighths, min_size=1, max_size=9))
    boundary = draw(st.sampled_from(BOUNDARIES))
    if draw(st.booleans()) and sum(taps) > 1e-3:
        return TemporalPSF(kernel=taps, boundary=boundary)  # normalised
    return TemporalPSF(kernel=taps, boundary=boundary, normalize=False)


@st.composite
def problems(draw, max_factors: int = 4, max_side: int = 3, max_T: int = 8, max_C: int = 2, pooling: bool = True):
    """(chain of factors, innermost first; the composed operator; its input shape; a data seed).

    Without ``pooling`` the chain keeps the volume's size (no pooling, no upsampling).
    """
    n = draw(st.integers(1, max_factors))
    kinds = ["temporal", "temporal.T", "blur", "mask", "scale", "identity"] + (["pool", "pool.T"] if pooling else [])
    kinds = draw(st.lists(st.sampled_from(kinds), min_size=n, max_size=n))
    pools = [draw(st.sampled_from([2, 3])) if k == "pool" else 1 for k in kinds]
    multiple = int(np.prod(pools))
    T, C = draw(st.integers(1, max_T)), draw(st.integers(1, max_C))
    H, W = multiple * draw(st.integers(1, max_side)), multiple * draw(st.integers(1, max_side))
    chain, current = [], (10**6, C, H, W)  # frames fixed below, once the "valid" PSFs' needs are known
    for kind, f in zip(kinds, pools):
        if kind in ("temporal", "temporal.T"):
            op = draw(temporal_psfs())
            op = op.T if kind == "temporal.T" else op
        elif kind == "blur":
            op = GaussianBlur(draw(st.sampled_from([1, 3, 5])), draw(st.floats(0.3, 3.0)))
        elif kind == "pool":
            op = Downsample(f)
        elif kind == "pool.T":
            op = Downsample(draw(st.sampled_from([2, 3]))).T  # upsampling: its input may have any size
        elif kind == "mask":
            seed = draw(st.integers(0, 2**16))
            op = Mask(np.random.default_rng(seed).uniform(-1, 2, current[-2:]))
        elif kind == "scale":
            op = draw(eighths.filter(bool)) * draw(temporal_psfs())
        else:
            op = Identity()
        chain.append(op)
        current = op.output_shape(current)
    composed = functools.reduce(lambda acc, op: op @ acc, chain[1:], chain[0])
    shape = (T + sum(sum(op.margins) for op in chain), C, H, W)  # "valid" PSFs: T to max_T measured frames
    return chain, composed, shape, draw(st.integers(0, 2**32 - 1))


def randn(shape, seed, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-10):
    """Equal up to rounding relative to the size of the values."""
    scale = max(norm(a), norm(b), 1e-300)
    assert a.shape == b.shape and norm(a - b) <= rtol * scale, (tuple(a.shape), norm(a - b), scale)


# ---------------------------------------------------------------- operators

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("profile", PROFILES)
def test_random_chains_are_exactly_adjoint(profile, dtype):
    @fuzz(profile, problems())
    def check(problem):
        _, op, shape, seed = problem
        u = randn(shape, seed, dtype)
        v = randn(op.output_shape(shape), seed + 1, dtype)
        gap, scale = adjoint_gap(op, u, v)
        assert gap <= 4 * DOT_RTOL[dtype] * scale


@pytest.mark.parametrize("profile", PROFILES)
def test_random_chains_are_linear(profile):
    @fuzz(profile, problems(), eighths, eighths)
    def check(problem, a, b):
        _, op, shape, seed = problem
        u, w = randn(shape, seed), randn(shape, seed + 1)
        close(op.forward(a * u + b * w), a * op.forward(u) + b * op.forward(w))
        y, z = randn(op.output_shape(shape), seed + 2), randn(op.output_shape(shape), seed + 3)
        close(op.adjoint(a * y + b * z), a * op.adjoint(y) + b * op.adjoint(z))


@pytest.mark.parametrize("profile", PROFILES)
def test_chain_equals_its_factors_one_by_one(profile):
    """forward = f_n(...f_1(x)), adjoint = f_1^T(...f_n^T(y)), normal (fused where it can be) = A^T A x."""
    @fuzz(profile, problems())
    def check(problem):
        chain, op, shape, seed = problem
        x = randn(shape, seed)
        step = x
        for f in chain:
            step = f.forward(step)
        close(op.forward(x), step)
        y = randn(op.output_shape(shape), seed + 1)
        back = y
        for f in reversed(chain):
            back = f.adjoint(back)
        close(op.adjoint(y), back)
        close(op.normal(x), op.adjoint(op.forward(x)))


@pytest.mark.parametrize("profile", PROFILES)
def test_operator_algebra(profile):
    """(A B)^T = B^T A^T, (A B) C = A (B C), s (A B) = (s A) B = A (s B), (A^T)^T = A, shapes round-trip."""
    @fuzz(profile, problems(max_factors=3), eighths)
    def check(problem, s):
        chain, op, shape, seed = problem
        x = randn(shape, seed)
        y = randn(op.output_shape(shape), seed + 1)
        reversed_adjoints = functools.reduce(lambda acc, f: acc @ f.T, chain[1:], chain[0].T)
        close(op.T.forward(y), reversed_adjoints.forward(y))
        close(op.T.T.forward(x), op.forward(x))
        if len(chain) == 3:
            a, b, c = chain[2], chain[1], chain[0]
            close(((a @ b) @ c).forward(x), (a @ (b @ c)).forward(x))
        outer, inner_ops = chain[-1], chain[:-1]
        rest = functools.reduce(lambda acc, f: f @ acc, inner_ops[1:], inner_ops[0]) if inner_ops else Identity()
        close((s * (outer @ rest)).forward(x), ((s * outer) @ rest).forward(x))
        close((s * (outer @ rest)).forward(x), (outer @ (s * rest)).forward(x))
        close((s * op).normal(x), (s * s) * op.normal(x))
        assert tuple(op.input_shape(op.output_shape(shape))) == shape
        assert tuple(op.forward(x).shape) == tuple(op.output_shape(shape))


# ---------------------------------------------------------------- CG on random SPD systems

@pytest.mark.parametrize("profile", PROFILES)
def test_cg_error_energy_never_increases_on_random_systems(profile):
    """For H = I + gamma A^T A (SPD) or A^T A (PSD, consistent b), ||x_k - x*||_H^2 is non-increasing, and the
    first step lowers it (an exact line search along r_0 != 0).  (Solving in n = dim steps holds in exact
    arithmetic only: random chains reach condition numbers of 1e8, where rounding delays convergence.)

    CG stops at a residual of 1e-10 ||b||: in exact arithmetic it would stop at r = 0, and iterating on past
    that point on a singular H only amplifies rounding in H's null space (the energy can then jump)."""
    @fuzz(profile, problems(max_factors=3, max_side=3, max_T=6, max_C=1, pooling=False),
          st.one_of(st.none(), st.floats(0.01, 10.0)))
    def check(problem, gamma):
        _, op, shape, seed = problem
        n = int(np.prod(shape))
        A = dense(op, shape)
        y = randn(op.output_shape(shape), seed + 1)
        x0 = randn(shape, seed + 2)
        if gamma is None:
            H, b = A.T @ A, A.T @ y.reshape(-1).numpy()
        else:
            H, b = np.eye(n) + gamma * A.T @ A, x0.reshape(-1).numpy() + gamma * A.T @ y.reshape(-1).numpy()
        x_star = np.linalg.lstsq(H, b, rcond=None)[0]
        iterates = [x0.reshape(-1).numpy()]
        cg_solve(op, y, x0=x0, n_iter=n, gamma=gamma, tol=1e-10 * np.linalg.norm(b),
                 callback=lambda k, xk, rk: iterates.append(xk.reshape(-1).numpy()))
        energy = [float((x - x_star) @ H @ (x - x_star)) for x in iterates]
        slack = 1e-9 * max(energy[0], 1e-300) + 1e-20
        assert all(later <= earlier + slack for earlier, later in zip(energy, energy[1:])), energy
        if len(iterates) > 1:
            assert energy[1] < energy[0]


@pytest.mark.parametrize("profile", PROFILES)
def test_conjugate_gradient_on_random_spd_matrices(profile):
    """Plain matrices with random spectra (condition number up to 1e4): energy monotone, stopping rule kept."""
    @fuzz(profile, st.integers(1, 24), st.integers(0, 2**32 - 1), st.floats(0, 4), st.integers(0, 30),
          st.sampled_from([0.0, 1e-8, 1e-3]))
    def check(n, seed, log_cond, n_iter, tol):
        rng = np.random.default_rng(seed)
        Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
        H = (Q * np.logspace(0, log_cond, n)) @ Q.T
        b, x0 = rng.standard_normal(n), rng.standard_normal(n)
        x_star = np.linalg.solve(H, b)
        Ht = torch.from_numpy(H)
        iterates = [x0]
        x, history = conjugate_gradient(lambda v: Ht @ v, torch.from_numpy(b), torch.from_numpy(x0), n_iter, tol,
                                        lambda k, xk, rk: iterates.append(xk.numpy().copy()))
        energy = [float((v - x_star) @ H @ (v - x_star)) for v in iterates]
        assert all(later <= earlier * (1 + 1e-9) + 1e-24 for earlier, later in zip(energy, energy[1:])), energy
        assert len(history) == len(iterates) <= n_iter + 1
        if len(history) <= n_iter:  # stopped early: only because the residual fell below tol
            assert history[-1] < tol or history[-1] == 0
        np.testing.assert_allclose(history[-1], np.linalg.norm(b - H @ x.numpy()), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- the CPU kernel against torch

@st.composite
def time_matrices(draw) -> np.ndarray:
    """A PSF's T x T matrix (banded, wrapped at the corners by circular; the square matrix a "valid" PSF sends the
    kernel, whose incomplete rows it drops afterwards) or a random sparse matrix."""
    T = draw(st.integers(1, 12))
    if draw(st.booleans()):
        return draw(temporal_psfs())._square(T)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.where(rng.random((T, T)) < draw(st.floats(0, 1)), rng.standard_normal((T, T)), 0.0)


@pytest.mark.parametrize("profile", PROFILES)
def test_cpu_kernel_equals_torch_reference(profile, monkeypatch):
    pytest.importorskip("svimg._kernels._banded_cpu", reason="the Cython extension is not built")

    @fuzz(profile, time_matrices(), st.sampled_from([torch.float32, torch.float64]), st.integers(1, 3),
          st.integers(1, 40), st.booleans(), st.integers(0, 2**32 - 1))
    def check(M, dtype, C, P, strided, seed):
        T = M.shape[0]
        x = randn((T, C, P, 3), seed, dtype)
        if strided:
            x = x.transpose(2, 3)  # a non-contiguous view
        results = {}
        for backend in ("torch", "cython"):
            monkeypatch.setenv("SVIMG_BACKEND", backend)
            results[backend] = _dispatch.time_apply(x, M)
        monkeypatch.delenv("SVIMG_BACKEND")
        ref, got = results["torch"].double(), results["cython"].double()
        assert got.dtype == ref.dtype and got.shape == x.shape
        exact = torch.from_numpy(np.abs(M)) @ x.double().abs().reshape(T, -1)  # bounds the rounding error
        tol = (4e-6 if dtype == torch.float32 else 1e-14) * exact.reshape(x.shape)
        assert bool(((got - ref).abs() <= tol).all())
