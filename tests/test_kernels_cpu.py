"""The Cython CPU kernel (svimg._kernels._banded_cpu): against the torch reference, GIL release, dispatch."""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import svimg
from svimg import _dispatch, _timing
from svimg.ops import BOUNDARIES, TemporalPSF

kernel_module = pytest.importorskip("svimg._kernels._banded_cpu", reason="the Cython extension is not built")
band_apply = kernel_module.band_apply

PSFS = {
    "uniform7": lambda b: TemporalPSF(7, boundary=b),
    "uniform13": lambda b: TemporalPSF(13, boundary=b),
    "gauss1": lambda b: TemporalPSF.gaussian(1.0, boundary=b),
    "asym4": lambda b: TemporalPSF(kernel=[0.5, -0.2, 1.0, 0.3], boundary=b, normalize=False),
}
# (T, P): T = 1, T below the kernel width, odd P, P across several 512-pixel blocks, and one volume large
# enough for the parallel (OpenMP) path.
SHAPES = [(1, 1), (1, 9), (3, 7), (5, 513), (16, 1031), (16, 20_011)]


def _torch_reference(x, M, monkeypatch):
    monkeypatch.setenv("SVIMG_BACKEND", "torch")
    return _dispatch.time_apply(torch.from_numpy(x), M).numpy()


def _ell_tables(A, factors):
    """The plain ELL form as one stage without recurrences (what band_apply runs)."""
    cols, weights = _dispatch.ell_form(A)
    return [(cols, weights, np.zeros(A.shape[0], np.uint8))]


TABLES = {"ell": _ell_tables, "planned": _dispatch.band_plan}  # planned: running-sum rows, normal as M then M^T


@pytest.mark.parametrize("tables", list(TABLES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("psf", list(PSFS))
def test_matches_torch_reference(psf, boundary, dtype, tables, monkeypatch):
    """Forward, adjoint and normal: within 1e-6 (float32) / 1e-14 (float64) of the dense torch product,
    relative to its max.  "valid" sends the kernel the square matrices TemporalPSF applies (the zero rule's,
    whose incomplete rows it drops afterwards) and M^T M, which exists from one complete exposure on."""
    op = PSFS[psf](boundary)
    rng = np.random.default_rng(0)
    for T, P in SHAPES + [(40, 3001)]:
        x = rng.standard_normal((T, P)).astype(dtype)
        if boundary == "valid":
            S = op._square(T)
            cases = {"forward": (S, ()), "adjoint": (S.T, ())}
            if T > sum(op.margins):
                cases["normal"] = (op._normal_matrix(T), ())
        else:
            M = op.matrix(T)
            cases = {"forward": (M, ()), "adjoint": (M.T, ()), "normal": (M.T @ M, (M, M.T))}
        for kind, (A, factors) in cases.items():
            got = kernel_module.stages_apply(x, TABLES[tables](A, factors))
            ref = _torch_reference(x, A, monkeypatch)
            assert got.dtype == dtype and got.shape == (T, P)
            scale = max(np.abs(ref).max(), 1e-30)
            tol = 1e-6 if dtype == np.float32 else 1e-14
            assert np.abs(got - ref).max() <= tol * scale, f"{kind} T={T} P={P}"


def test_box_kernels_plan_running_sums_and_split_normals():
    """Width 13 forward: two taps and a carried row on most rows; the normal operator as two running-sum stages."""
    M = TemporalPSF(13, boundary="circular").matrix(64)
    (cols, weights, recur), cost = _dispatch.stage_table(M)
    assert recur.sum() >= 64 * _dispatch.RESTART // (_dispatch.RESTART + 1) - 1 and cost < 5
    assert len(_dispatch.band_plan(M.T @ M, (M, M.T))) == 2
    gauss = TemporalPSF.gaussian(1.0, boundary="circular").matrix(64)  # no exact zeros in its row differences: direct rows only
    assert not _dispatch.stage_table(gauss)[0][2].any()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kernel_reports_non_finite_input(bad):
    x = np.random.default_rng(6).random((8, 5000))
    stages = _dispatch.band_plan(TemporalPSF(3, boundary="circular").matrix(8))
    out, finite = kernel_module.stages_apply(x, stages, report_finite=True)
    assert finite and np.array_equal(out, kernel_module.stages_apply(x, stages))
    x[5, 4321] = bad
    assert not kernel_module.stages_apply(x, stages, report_finite=True)[1]


def test_isa_names_the_instruction_set():
    assert kernel_module.isa() in ("avx512f", "avx2", "baseline (sse2)", "compiler default")


def test_float64_is_exact_to_rounding(monkeypatch):
    op = TemporalPSF.gaussian(1.0, boundary="reflect")
    x = np.random.default_rng(1).standard_normal((16, 4097))
    M = op.matrix(16).T @ op.matrix(16)
    np.testing.assert_allclose(band_apply(x, *_dispatch.ell_form(M)), _torch_reference(x, M, monkeypatch), rtol=1e-13, atol=1e-14)


def test_inputs_are_read_only_and_may_be_strided():
    x = np.random.default_rng(2).standard_normal((8, 40))
    x_copy = x.copy()
    cols, weights = _dispatch.ell_form(TemporalPSF(7, boundary="zero").matrix(8))
    strided = band_apply(x[:, ::2], cols, weights)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_allclose(strided, TemporalPSF(7, boundary="zero").matrix(8) @ x[:, ::2], rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((np.zeros((2, 3, 4)), np.zeros((2, 1), np.int32), np.ones((2, 1))), ValueError, r"x must be a \(T, P\) array"),
        ((np.zeros((2, 3), np.int64), np.zeros((2, 1), np.int32), np.ones((2, 1))), TypeError, "x must be float32 or float64, got int64"),
        ((np.zeros((2, 3)), np.zeros((3, 1), np.int32), np.ones((3, 1))), ValueError, "ELL tables .* do not fit 2 frames"),
        ((np.zeros((2, 3)), np.zeros((2, 2), np.int32), np.ones((2, 1))), ValueError, "ELL tables"),
        ((np.zeros((2, 3)), np.full((2, 1), 2, np.int32), np.ones((2, 1))), ValueError, "ELL column index out of range"),
        ((np.zeros((2, 3)), np.full((2, 1), -1, np.int32), np.ones((2, 1))), ValueError, "ELL column index out of range"),
    ],
)
def test_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        band_apply(*args)


def _big_problem():
    """Large enough (17 M multiply-adds) for the kernel to run a while on the parallel path."""
    x = np.random.default_rng(3).random((8, 300_007)).astype(np.float32)
    return x, _dispatch.ell_form(TemporalPSF(7, boundary="circular").matrix(8))


def test_releases_the_gil():
    """With a huge switch interval the main thread never hands the GIL over on its own; a spinning Python thread
    (which gives the GIL back after every step) can then only advance while the kernel has released it."""
    x, (cols, weights) = _big_problem()
    progress, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            progress[0] += 1
            time.sleep(0)  # releases the GIL at once

    old_interval = sys.getswitchinterval()
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    sys.setswitchinterval(1000.0)
    advanced = []
    try:
        for _ in range(20):  # the OS may not schedule the spinner during one call on a busy machine; it will in 20
            before = progress[0]
            band_apply(x, cols, weights)
            advanced.append(progress[0] - before)
            if advanced[-1]:
                break
    finally:
        sys.setswitchinterval(old_interval)
        stop.set()
        thread.join()
    assert max(advanced) > 0


def test_two_threads_run_it_concurrently():
    x, (cols, weights) = _big_problem()
    inputs = [x, x[::-1].copy(), 2 * x, x + 1]
    expected = [band_apply(v, cols, weights) for v in inputs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda v: band_apply(v, cols, weights), inputs))
    for got, ref in zip(results, expected):
        np.testing.assert_array_equal(got, ref)


def test_extension_is_built_with_openmp():
    if not sys.platform.startswith("linux"):
        pytest.skip("checks the ELF imports")
    with open(kernel_module.__file__, "rb") as so:
        assert b"GOMP_parallel" in so.read()


# --------------------------------------------------------------------------- dispatch


@pytest.fixture
def spy(monkeypatch):
    """Record every call that reaches the Cython kernel."""
    monkeypatch.delenv("SVIMG_BACKEND", raising=False)
    calls = []
    original = kernel_module.stages_apply

    def recording(x, stages, **options):
        calls.append(x.dtype)
        return original(x, stages, **options)

    monkeypatch.setattr(kernel_module, "stages_apply", recording)
    return calls


@pytest.fixture
def cython_measures_fastest(monkeypatch):
    """Make every timing in svimg._timing say the Cython kernel is the faster one (fresh choices)."""
    monkeypatch.setattr(_timing, "_CHOICES", {})
    seconds = {"cython": 1.0, "torch": 2.0}
    monkeypatch.setattr(_timing, "_median_seconds", lambda run, device: seconds[run.args[0]])


def test_dispatch_uses_cython_for_cpu_tensors_and_numpy_when_it_measures_fastest(cython_measures_fastest, spy):
    op = TemporalPSF(7, boundary="reflect")
    x = np.random.default_rng(0).random((6, 2, 4, 4)).astype(np.float32)
    y = svimg.forward_op(x, op)
    svimg.adjoint_op(y, op)
    op.normal(torch.from_numpy(x).double())
    assert spy == [np.float32, np.float32, np.float64]
    for dtype in (torch.float32, torch.float64):
        assert _dispatch.backend_for(torch.zeros(2, 2, dtype=dtype)) == "cython"


def test_dispatch_falls_back_to_torch(cython_measures_fastest, spy, monkeypatch):
    """float16 is not a Cython dtype, and a tensor that needs autograd must stay in torch (gradients are right)."""
    op = TemporalPSF(kernel=[0.5, -0.2, 1.0, 0.3], boundary="zero", normalize=False)
    half = torch.rand(5, 1, 2, 2).half()
    assert _dispatch.backend_for(half) == "torch"
    assert op.forward(half).dtype == torch.float16
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    assert _dispatch.backend_for(x) == "torch"
    v = torch.rand(5, 1, 2, 2, dtype=torch.float64)
    (op.forward(x) * v).sum().backward()
    torch.testing.assert_close(x.grad, op.adjoint(v), rtol=1e-14, atol=1e-15)  # d<Ax, v>/dx = A^T v
    assert spy == [np.float64]  # only the adjoint above ran in Cython
    with torch.no_grad():
        assert _dispatch.backend_for(x) == "cython"


def test_forced_backend_errors(monkeypatch):
    monkeypatch.setenv("SVIMG_BACKEND", "fortran")
    with pytest.raises(ValueError, match="SVIMG_BACKEND must be one of"):
        _dispatch.backend_for(torch.zeros(2, 2))
    monkeypatch.setenv("SVIMG_BACKEND", "cython")
    with pytest.raises(RuntimeError, match="SVIMG_BACKEND=cython was requested but it does not run torch.float16"):
        _dispatch.backend_for(torch.zeros(2, 2).half())
    with pytest.raises(RuntimeError, match="requires grad"):
        _dispatch.backend_for(torch.zeros(2, 2, requires_grad=True))
