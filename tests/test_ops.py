"""Operators: exact adjoints (dot test), linearity, algebra, and equality with plain references."""

import re

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _opcheck import DOT_RTOL, adjoint_gap, dense
from svimg import _dispatch
from svimg.ops import (
    BOUNDARIES,
    Composed,
    Downsample,
    GaussianBlur,
    Identity,
    Mask,
    RandomMask,
    Scaled,
    TemporalPSF,
)

SETTINGS = settings(max_examples=25, deadline=None)
# "valid" is scipy's result with the incomplete rows dropped (any mode: they are the ones a mode touches)
SCIPY_MODE = {"valid": "constant", "circular": "wrap", "zero": "constant", "reflect": "reflect", "replicate": "nearest"}
ASYMMETRIC = [0.5, -0.2, 1.0, 0.3]  # even length, not symmetric, not normalised: no accidental self-adjointness

TEMPORAL = {
    "uniform7": lambda b: TemporalPSF(7, boundary=b),
    "uniform13": lambda b: TemporalPSF(13, boundary=b),
    "gauss1": lambda b: TemporalPSF.gaussian(1.0, boundary=b),
    "asym4": lambda b: TemporalPSF(kernel=ASYMMETRIC, boundary=b, normalize=False),
}


def _user_mask(H, W):
    return Mask(np.random.default_rng(H * 100 + W).random((H, W)))


# name -> (factory(H, W) -> operator, spatial multiple the frame size must have)
OPERATORS = {
    **{f"{name}-{b}": ((lambda H, W, f=f, b=b: f(b)), 1) for name, f in TEMPORAL.items() for b in BOUNDARIES},
    "blur13": (lambda H, W: GaussianBlur(13, 2.0), 1),
    "blur5": (lambda H, W: GaussianBlur(5, 1.0), 1),
    "down4": (lambda H, W: Downsample(4), 4),
    "down2": (lambda H, W: Downsample(2), 2),
    "randmask": (lambda H, W: RandomMask(0.5, seed=7), 1),
    "mask": (_user_mask, 1),
    "identity": (lambda H, W: Identity(), 1),
    "scaled": (lambda H, W: -1.5 * TemporalPSF(kernel=ASYMMETRIC, boundary="reflect"), 1),
    "paper-sr": (lambda H, W: Downsample(2) @ TemporalPSF(7, boundary="zero"), 2),
    "recorded-sr": (lambda H, W: Downsample(2) @ TemporalPSF(7), 2),  # the default boundary, "valid"
    "scaled-valid": (lambda H, W: -1.5 * TemporalPSF(kernel=ASYMMETRIC, boundary="valid"), 1),
    "adjoint-valid": (lambda H, W: TemporalPSF(kernel=ASYMMETRIC, boundary="valid").T, 1),
    "chain3": (
        lambda H, W: RandomMask(0.5, seed=1) @ GaussianBlur(5, 1.0) @ TemporalPSF.gaussian(1.0, boundary="replicate"),
        1,
    ),
    "adjoint-view": (lambda H, W: TemporalPSF(kernel=ASYMMETRIC, boundary="zero").T, 1),
    "adjoint-down": (lambda H, W: Downsample(2).T, 1),
}


@st.composite
def volumes(draw, multiple=1):
    """(T, C, H, W) shapes, T from 1 (shorter than every kernel here) to 20, and a data seed."""
    T = draw(st.integers(1, 20))
    C = draw(st.integers(1, 3))
    H = draw(st.integers(1, 5)) * multiple
    W = draw(st.integers(1, 5)) * multiple
    return (T, C, H, W), draw(st.integers(0, 2**32 - 1))


def _fit(op, shape):
    """``shape`` with ``sum(op.margins)`` more frames: T measured frames for a "valid" PSF (which rejects
    fewer than one complete exposure), the shape itself for every other operator."""
    return (shape[0] + sum(op.margins), *shape[1:])


def _randn(shape, seed, dtype=torch.float64):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(OPERATORS))
@SETTINGS
@given(data=st.data())
def test_dot_test(name, dtype, data):
    """<A u, v> == <u, A^T v> to the dtype's precision, T = 1 and T < kernel width included ("valid": 1 to 20
    measured frames)."""
    factory, multiple = OPERATORS[name]
    shape, seed = data.draw(volumes(multiple))
    op = factory(*shape[-2:])
    shape = _fit(op, shape)
    u = _randn(shape, seed, dtype)
    v = _randn(op.output_shape(shape), seed + 1, dtype)
    gap, scale = adjoint_gap(op, u, v)
    assert gap <= DOT_RTOL[dtype] * scale


@pytest.mark.parametrize("name", list(OPERATORS))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_linear_and_normal(name, data):
    """A(a u + b w) = a A u + b A w, and normal(x) == adjoint(forward(x)) (fused or not)."""
    factory, multiple = OPERATORS[name]
    shape, seed = data.draw(volumes(multiple))
    op = factory(*shape[-2:])
    shape = _fit(op, shape)
    u, w = _randn(shape, seed), _randn(shape, seed + 1)
    a, b = 0.7, -2.5
    torch.testing.assert_close(op.forward(a * u + b * w), a * op.forward(u) + b * op.forward(w), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(op.normal(u), op.adjoint(op.forward(u)), rtol=1e-12, atol=1e-12)


def test_dot_test_detects_a_wrong_adjoint():
    """The dot test is not vacuous: a temporal PSF whose 'adjoint' is its forward fails it off the circular case."""

    class NotSelfAdjoint(TemporalPSF):
        def adjoint(self, y):
            return self.forward(y)

    op = NotSelfAdjoint(kernel=ASYMMETRIC, boundary="zero")
    u, v = _randn((9, 1, 2, 2), 0), _randn((9, 1, 2, 2), 1)
    gap, scale = adjoint_gap(op, u, v)
    assert gap > 1e-3 * scale


# --------------------------------------------------------------------------- temporal PSF


@settings(max_examples=40, deadline=None)
@given(
    T=st.integers(1, 20),
    taps=st.integers(1, 15),
    boundary=st.sampled_from(BOUNDARIES),
    seed=st.integers(0, 2**32 - 1),
)
def test_temporal_matches_scipy_convolve1d(T, taps, boundary, seed):
    """y[t] = sum_j k[j] x[t - j + len(k)//2] with scipy's boundary modes, any length (even too), kernel > T too;
    "valid": T measured frames from T + taps - 1, scipy's rows without the incomplete ones (op.margins)."""
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal(taps)
    op = TemporalPSF(kernel=kernel, boundary=boundary, normalize=False)
    T += sum(op.margins)
    x = rng.standard_normal((T, 2, 3, 2))
    lead, trail = op.margins
    expected = ndi.convolve1d(x, kernel, axis=0, mode=SCIPY_MODE[boundary])[lead:T - trail]
    np.testing.assert_allclose(op.forward(torch.from_numpy(x)).numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.matrix(T), dense(op, (T, 1, 1, 1)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_paper_psfs_match_scipy_filters(boundary):
    """Uniform 7 and 13 are scipy's uniform_filter1d; the sigma-1 Gaussian is gaussian_filter1d(truncate=3)."""
    x = np.random.default_rng(0).random((16, 3, 4, 5))
    mode = SCIPY_MODE[boundary]
    cases = [
        (TemporalPSF(7, boundary=boundary), ndi.uniform_filter1d(x, 7, axis=0, mode=mode)),
        (TemporalPSF(13, boundary=boundary), ndi.uniform_filter1d(x, 13, axis=0, mode=mode)),
        (TemporalPSF.gaussian(1.0, boundary=boundary), ndi.gaussian_filter1d(x, 1.0, axis=0, mode=mode, truncate=3.0)),
    ]
    for op, expected in cases:
        lead, trail = op.margins  # "valid": 16 - support + 1 complete exposures
        np.testing.assert_allclose(op.forward(torch.from_numpy(x)).numpy(), expected[lead:16 - trail],
                                   rtol=1e-12, atol=1e-14)


def test_temporal_kernels():
    np.testing.assert_array_equal(TemporalPSF(7).kernel, np.full(7, 1 / 7))
    assert TemporalPSF(13).support == 13
    g = TemporalPSF.gaussian(1.0).kernel
    assert g.size == 7  # |j| <= round(3 sigma)
    assert g.sum() == pytest.approx(1.0, abs=1e-15)
    np.testing.assert_allclose(g, g[::-1], rtol=0, atol=0)
    np.testing.assert_allclose(g[4:] / g[3:-1], np.exp(-0.5 * (2 * np.arange(3) + 1)), rtol=1e-12)
    assert TemporalPSF.gaussian(2.0, truncate=2.0).support == 9
    np.testing.assert_array_equal(TemporalPSF(kernel=[1, 2, 1], normalize=False).kernel, [1, 2, 1])
    np.testing.assert_array_equal(TemporalPSF(kernel=[1, 2, 1]).kernel, [0.25, 0.5, 0.25])
    assert TemporalPSF(kernel=[3, 3, 3]) == TemporalPSF(3) == TemporalPSF.uniform(3)
    assert hash(TemporalPSF(kernel=[3, 3, 3])) == hash(TemporalPSF(3))
    assert TemporalPSF(3) != TemporalPSF(3, boundary="zero")
    assert TemporalPSF(3) != TemporalPSF(kernel=[1, 1, 1], normalize=False)
    assert repr(TemporalPSF(kernel=[1, 1, 1], normalize=False)) != repr(TemporalPSF(3))


def test_temporal_kernel_is_a_private_copy():
    kernel = np.array([1.0, 2.0, 1.0])
    op = TemporalPSF(kernel=kernel, normalize=False)
    kernel[:] = 0
    np.testing.assert_array_equal(op.kernel, [1, 2, 1])
    with pytest.raises(ValueError):
        op.kernel[0] = 5.0  # read-only
    with pytest.raises(ValueError):
        op.matrix(5)[0, 0] = 5.0


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_temporal_matrix_structure(boundary):
    """Normalised PSFs conserve mass except at zero-padded ends; a symmetric kernel gives a symmetric M except
    with the replicate boundary, an asymmetric one never does (so the adjoints must really be M^T)."""
    T = 10
    M = TemporalPSF(7, boundary=boundary).matrix(T)
    rows = M.sum(axis=1)
    A = TemporalPSF(kernel=ASYMMETRIC, boundary=boundary).matrix(T)
    if boundary == "valid":  # (T - 6, T): row t is the kernel over frames t .. t + 6, reversed (a convolution)
        assert M.shape == (T - 6, T) and A.shape == (T - 3, T)
        np.testing.assert_allclose(rows, 1.0, rtol=1e-14)
        for t in range(T - 3):
            np.testing.assert_allclose(A[t, t:t + 4], np.array(ASYMMETRIC)[::-1] / sum(ASYMMETRIC), rtol=1e-14)
            assert not A[t, :t].any() and not A[t, t + 4:].any()
        return
    if boundary == "zero":
        assert rows[3:-3] == pytest.approx(1.0) and rows[0] == pytest.approx(4 / 7)
    else:
        np.testing.assert_allclose(rows, 1.0, rtol=1e-14)
    assert np.allclose(M, M.T) == (boundary != "replicate")
    assert not np.allclose(A, A.T)


def test_temporal_kernel_longer_than_video():
    """T = 3 with 13 taps: the circular boundary wraps the offsets -6..6 several times (5 land on t, 4 on each other)."""
    M = TemporalPSF(13, boundary="circular").matrix(3)
    np.testing.assert_allclose(M, np.where(np.eye(3) == 1, 5 / 13, 4 / 13), rtol=1e-14)
    assert TemporalPSF(13, boundary="circular").matrix(1).tolist() == [[pytest.approx(1.0)]]
    assert TemporalPSF(13, boundary="zero").matrix(1).tolist() == [[pytest.approx(1 / 13)]]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(), ValueError, "exactly one of width"),
        (dict(width=7, kernel=[1.0]), ValueError, "exactly one of width"),
        (dict(width=0), ValueError, r"width must be an integer >= 1, got 0"),
        (dict(width=2.5), TypeError, r"width must be an integer >= 1, got 2.5"),
        (dict(width=True), TypeError, "width must be an integer"),
        (dict(kernel=[]), ValueError, "kernel is empty"),
        (dict(kernel=[[1.0, 2.0]]), ValueError, r"kernel must be 1-D, got an array of shape \(1, 2\)"),
        (dict(kernel=[1.0, -3.0]), ValueError, "kernel must have a positive sum to be normalised, got sum -2"),
        (dict(kernel=[1.0, -1.0]), ValueError, "kernel must have a positive sum"),
        (dict(kernel=[1.0, np.nan]), ValueError, "kernel contains NaN or Inf"),
        (dict(kernel=["a", "b"]), TypeError, "kernel must be a 1-D array of real numbers"),
        (dict(width=3, boundary="periodic"), ValueError, re.escape(f"boundary must be one of {BOUNDARIES}, got 'periodic'")),
    ],
)
def test_temporal_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TemporalPSF(**kwargs)


def test_temporal_non_normalised_kernels_are_allowed():
    """Without normalisation any finite 1-D kernel is a valid operator (a zero-sum derivative, say)."""
    op = TemporalPSF(kernel=[1.0, -1.0], normalize=False)
    assert op.matrix(4).sum() == pytest.approx(0.0)
    assert TemporalPSF(kernel=[1.0, -1.0], normalize=False, boundary="circular").matrix(4).sum() == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: TemporalPSF.gaussian(0.0), ValueError, "sigma must be > 0, got 0.0"),
        (lambda: TemporalPSF.gaussian(float("inf")), TypeError, "sigma must be a finite number"),
        (lambda: TemporalPSF.gaussian(1.0, truncate=-1), ValueError, "truncate must be > 0"),
        (lambda: GaussianBlur(size=12), ValueError, "size must be odd so the blur is centred, got 12"),
        (lambda: GaussianBlur(size=0), ValueError, "size must be an integer >= 1, got 0"),
        (lambda: GaussianBlur(sigma=-2.0), ValueError, "sigma must be > 0, got -2.0"),
        (lambda: Downsample(0), ValueError, "factor must be an integer >= 1, got 0"),
        (lambda: Downsample(2.0), TypeError, "factor must be an integer >= 1, got 2.0"),
        (lambda: RandomMask(0.0), ValueError, r"ratio must lie in \(0, 1\], got 0.0"),
        (lambda: RandomMask(1.5), ValueError, r"ratio must lie in \(0, 1\], got 1.5"),
        (lambda: RandomMask(-0.1), ValueError, r"ratio must lie in \(0, 1\], got -0.1"),
        (lambda: RandomMask(float("nan")), TypeError, "ratio must be a finite number"),
        (lambda: RandomMask(0.5, seed=-1), ValueError, "seed must be an integer >= 0, got -1"),
        (lambda: Mask(np.ones((2, 3, 4))), ValueError, r"mask must be a 2-D \(H, W\) array, got shape \(2, 3, 4\)"),
        (lambda: Mask(np.zeros((0, 3))), ValueError, "mask is empty"),
        (lambda: Mask([[1.0, np.inf]]), ValueError, "mask contains NaN or Inf"),
    ],
)
def test_spatial_and_gaussian_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------- spatial operators


@pytest.mark.parametrize("size, sigma", [(13, 2.0), (5, 1.0)])
def test_gaussian_blur_matches_scipy(size, sigma):
    """Per frame and channel, zero boundary: scipy's gaussian_filter with the same truncation, and convolve."""
    x = np.random.default_rng(1).random((3, 2, 11, 16))
    op = GaussianBlur(size, sigma)
    got = op.forward(torch.from_numpy(x)).numpy()
    truncate = (size // 2) / sigma
    np.testing.assert_allclose(got, ndi.gaussian_filter(x, (0, 0, sigma, sigma), mode="constant", truncate=truncate), atol=1e-14)
    per_frame = np.stack([[ndi.convolve(frame, op.kernel, mode="constant") for frame in xt] for xt in x])
    np.testing.assert_allclose(got, per_frame, atol=1e-14)
    assert op.kernel.shape == (size, size) and op.kernel.sum() == pytest.approx(1.0)


def test_gaussian_blur_smaller_frames_than_kernel():
    """Frames of 3 x 2 pixels under a 13 x 13 kernel keep their size and still match the reference."""
    x = np.random.default_rng(2).random((2, 1, 3, 2))
    got = GaussianBlur().forward(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ndi.gaussian_filter(x, (0, 0, 2, 2), mode="constant", truncate=3.0), atol=1e-14)


@pytest.mark.parametrize("backend", ["cython", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(2, 3, 17, 23), (1, 1, 4, 5), (1, 1, 1, 1), (2, 1, 13, 30)], ids=str)
@pytest.mark.parametrize("size, sigma", [(13, 2.0), (3, 1.0), (1, 1.0)])
def test_gaussian_blur_backends_match_the_2d_convolution(backend, dtype, shape, size, sigma, monkeypatch):
    """Both separable passes (Cython kernel, torch conv2d) against one unseparated 2-D conv2d in float64."""
    if backend == "cython" and "cython" not in _dispatch.available_backends():
        pytest.skip("the Cython extension is not built")
    monkeypatch.setenv("SVIMG_BACKEND", backend)
    op = GaussianBlur(size, sigma)
    x = torch.from_numpy(np.random.default_rng(4).standard_normal(shape))
    H, W = shape[-2:]
    ref = torch.nn.functional.conv2d(x.reshape(-1, 1, H, W), torch.from_numpy(op.kernel)[None, None], padding=size // 2)
    got = op.forward(x.to(dtype))
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got.double(), ref.reshape(shape), rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_downsample_is_block_mean(factor):
    T, C, h, w = 3, 2, 3, 5
    x = np.random.default_rng(3).random((T, C, h * factor, w * factor))
    op = Downsample(factor)
    y = op.forward(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, x.reshape(T, C, h, factor, w, factor).mean(axis=(3, 5)), rtol=1e-14)
    z = np.random.default_rng(4).random((T, C, h, w))
    up = np.repeat(np.repeat(z, factor, axis=2), factor, axis=3) / factor**2
    np.testing.assert_allclose(op.adjoint(torch.from_numpy(z)).numpy(), up, rtol=1e-14)
    assert op.output_shape((T, C, h * factor, w * factor)) == (T, C, h, w)
    assert op.input_shape((T, C, h, w)) == (T, C, h * factor, w * factor)


def test_downsample_rejects_indivisible_frames():
    with pytest.raises(ValueError, match=r"Downsample\(factor=4\) needs height and width divisible by 4, got 6x8"):
        Downsample(4).forward(torch.zeros(1, 1, 6, 8))


def test_random_mask_is_deterministic_and_shared():
    """Same mask for every frame and channel, a pure function of (H, W, ratio, seed), exactly round(ratio H W) ones."""
    x = torch.ones(4, 3, 10, 12, dtype=torch.float64)
    y = RandomMask(0.5, seed=11).forward(x)
    m = y[0, 0]
    assert torch.equal(y, m.expand_as(y))
    assert set(m.unique().tolist()) == {0.0, 1.0} and int(m.sum()) == 60
    assert torch.equal(RandomMask(0.5, seed=11).mask_for(10, 12), m)
    assert not torch.equal(RandomMask(0.5, seed=12).mask_for(10, 12), m)
    assert int(RandomMask(0.3, seed=0).mask_for(10, 12).sum()) == 36
    assert torch.equal(RandomMask(1.0).forward(x), x)


def test_random_mask_copy_is_private():
    op = RandomMask(0.5, seed=3)
    op.mask_for(4, 4).zero_()
    assert int(op.mask_for(4, 4).sum()) == 8


def test_user_mask_broadcasts_and_is_copied():
    m = np.random.default_rng(5).random((4, 6))
    op = Mask(m)
    x = torch.from_numpy(np.random.default_rng(6).random((3, 2, 4, 6)))
    np.testing.assert_allclose(op.forward(x).numpy(), x.numpy() * m[None, None], rtol=1e-15)
    np.testing.assert_allclose(op.normal(x).numpy(), x.numpy() * m[None, None] ** 2, rtol=1e-15)
    m[:] = 0
    mt = torch.ones(4, 6, dtype=torch.float64)
    op_t = Mask(mt)
    mt.zero_()
    assert op.forward(x).abs().sum() > 0 and torch.equal(op_t.forward(x), x)
    assert torch.equal(Mask(np.ones((4, 6), dtype=bool)).forward(x), x)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 6\) does not fit frames of size \(4, 5\)"):
        op.forward(torch.zeros(1, 1, 4, 5))


# --------------------------------------------------------------------------- algebra


def test_composition_applies_right_operand_first():
    A, B, C = GaussianBlur(5, 1.0), RandomMask(0.5, seed=2), TemporalPSF(kernel=ASYMMETRIC, boundary="reflect")
    op = A @ B @ C
    assert isinstance(op, Composed) and op.factors() == [A, B, C]
    x = _randn((6, 2, 8, 8), 0)
    y = _randn((6, 2, 8, 8), 1)
    torch.testing.assert_close(op.forward(x), A.forward(B.forward(C.forward(x))), rtol=0, atol=0)
    torch.testing.assert_close(op.adjoint(y), C.adjoint(B.adjoint(A.adjoint(y))), rtol=0, atol=0)
    assert not torch.allclose((B @ A).forward(x), (A @ B).forward(x))  # the order is not a matter of taste
    circular = TemporalPSF(7, boundary="circular")
    assert (Downsample(2) @ circular).output_shape((16, 3, 8, 8)) == (16, 3, 4, 4)
    assert (Downsample(2) @ circular).input_shape((16, 3, 4, 4)) == (16, 3, 8, 8)
    assert repr(Downsample(4) @ circular) == "Downsample(4) @ TemporalPSF(7, boundary='circular')"
    assert repr(Downsample(4) @ TemporalPSF(7)) == "Downsample(4) @ TemporalPSF(7, boundary='valid')"


def test_valid_is_the_default_and_its_shapes():
    """A clip cut from a longer recording: T_x unknown frames, T_x - support + 1 measured rows, margins (k-1-c, c)."""
    from svimg.ops.temporal import DEFAULT_BOUNDARY

    assert DEFAULT_BOUNDARY == "valid" == TemporalPSF(7).boundary == TemporalPSF.gaussian(1.0).boundary
    for op, margins in [(TemporalPSF(7), (3, 3)), (TemporalPSF(4), (1, 2)), (TemporalPSF(1), (0, 0)),
                        (TemporalPSF(7, boundary="circular"), (0, 0)), (TemporalPSF(7, boundary="zero"), (0, 0))]:
        assert op.margins == margins
        extra = sum(margins)
        assert op.output_shape((20, 3, 8, 8)) == (20 - extra, 3, 8, 8)
        assert op.input_shape((20 - extra, 3, 8, 8)) == (20, 3, 8, 8)
        assert op.matrix(20).shape == (20 - extra, 20)
        assert tuple(op.forward(torch.zeros(20, 1, 2, 2)).shape) == (20 - extra, 1, 2, 2)
        assert tuple(op.adjoint(torch.zeros(20 - extra, 1, 2, 2)).shape) == (20, 1, 2, 2)
    valid = TemporalPSF(7)
    np.testing.assert_array_equal(valid.matrix(12), valid._square(12)[3:9])  # the complete rows of the zero rule


def test_composed_margins_and_shapes():
    """Composed ops add their margins, Scaled passes them through; shapes follow the temporal PSF."""
    op = RandomMask(0.5, seed=1) @ Downsample(2) @ TemporalPSF(13)
    assert op.margins == (6, 6) and (2.0 * op).margins == (6, 6) and (op * 2.0).margins == (6, 6)
    assert op.output_shape((20, 3, 8, 8)) == (8, 3, 4, 4)
    assert op.input_shape((8, 3, 4, 4)) == (20, 3, 8, 8)
    assert (GaussianBlur(5, 1.0) @ TemporalPSF(4)).margins == (1, 2)
    assert (Downsample(2) @ TemporalPSF(7, boundary="reflect")).margins == (0, 0)
    assert Identity().margins == (0, 0)


@pytest.mark.parametrize("T", [1, 6])
def test_valid_too_short_input_raises(T):
    """Fewer frames than one complete exposure (7 taps need 7) is an error naming the need, not an empty result."""
    op = Downsample(2) @ TemporalPSF(7)
    with pytest.raises(ValueError, match=rf"TemporalPSF\(7, boundary='valid'\) needs more than 6 frames.*got {T}"):
        op.forward(torch.zeros(T, 1, 4, 4))
    with pytest.raises(ValueError, match="needs more than 6 frames"):
        op.output_shape((T, 1, 4, 4))
    with pytest.raises(ValueError, match="needs more than 6 frames"):
        TemporalPSF(7).matrix(T)
    with pytest.raises(ValueError, match="needs at least one measured frame, got 0"):
        TemporalPSF(7).input_shape((0, 1, 4, 4))


def test_scalar_weights():
    A = TemporalPSF(kernel=ASYMMETRIC, boundary="zero")
    x = _randn((5, 1, 3, 3), 0)
    for op in (2.5 * A, A * 2.5, np.float32(2.5) * A):
        assert isinstance(op, Scaled)
        torch.testing.assert_close(op.forward(x), 2.5 * A.forward(x), rtol=1e-15, atol=0)
        torch.testing.assert_close(op.adjoint(x), 2.5 * A.adjoint(x), rtol=1e-15, atol=0)
        torch.testing.assert_close(op.normal(x), 6.25 * A.normal(x), rtol=1e-14, atol=0)
    for bad in ("2", True, A):
        with pytest.raises(TypeError):
            A * bad


def test_adjoint_view_and_identity():
    A = TemporalPSF(kernel=ASYMMETRIC, boundary="replicate")
    x = _randn((7, 1, 2, 3), 0)
    torch.testing.assert_close(A.T.forward(x), A.adjoint(x), rtol=0, atol=0)
    torch.testing.assert_close(A.T.adjoint(x), A.forward(x), rtol=0, atol=0)
    assert Downsample(2).T.output_shape((1, 1, 3, 3)) == (1, 1, 6, 6)
    out = Identity().forward(x)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


# --------------------------------------------------------------------------- backends


OTHER_BACKENDS = [b for b in _dispatch.available_backends() if b != "torch"]
# Triton runs in its (slow) interpreter without a GPU: one kernel shape per boundary there.
BACKEND_CASES = [
    pytest.param(backend, name, marks=[pytest.mark.triton] if backend == "triton" else [], id=f"{backend}-{name}")
    for backend in OTHER_BACKENDS
    for name in OPERATORS
    if not name.startswith(("blur", "down", "mask", "randmask", "identity", "adjoint-down"))  # no temporal part
    and (backend != "triton" or name.startswith("asym4") or name == "paper-sr")
]


@pytest.mark.skipif(not OTHER_BACKENDS, reason="only the torch backend is available")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("backend, name", BACKEND_CASES)
def test_backends_agree_with_torch(backend, name, dtype, monkeypatch):
    """Every available fast backend gives the torch reference's forward, adjoint and normal (T = 1 and T < taps too)."""
    factory, multiple = OPERATORS[name]
    shapes = [(1, 1, multiple, multiple), (5, 1, 3 * multiple, multiple), (16, 3, 2 * multiple, 5 * multiple)]
    if backend == "triton":
        shapes = shapes[1:2]
    results = {}
    for b in ("torch", backend):
        monkeypatch.setenv("SVIMG_BACKEND", b)
        for shape in shapes:
            op = factory(*shape[-2:])
            shape = _fit(op, shape)
            x = _randn(shape, 0, dtype)
            y = _randn(op.output_shape(shape), 1, dtype)
            results.setdefault(b, []).extend([op.forward(x), op.adjoint(y), op.normal(x)])
    tol = {torch.float32: 1e-6, torch.float64: 1e-13}[dtype]
    for ref, got in zip(results["torch"], results[backend]):
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol)


def test_the_temporal_matrix_is_built_once_per_frame_count():
    """forward and adjoint read ``_square(T)`` on every call: it is cached, not rebuilt."""
    psf = TemporalPSF(7)
    assert psf._square(20) is psf._square(20)
