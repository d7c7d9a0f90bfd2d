"""Backend choice in svimg._dispatch: defaults per device and dtype, forcing, and forced-but-unavailable errors.

The rules are checked on stand-ins that carry only ``device``, ``dtype`` and
``requires_grad``, so the CUDA rules are exercised on machines without a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from svimg import _dispatch
from svimg.ops import TemporalPSF

HAS_CYTHON = _dispatch._module("cython") is not None
HAS_TRITON = _dispatch._module("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton does not import")


def _like(device: str, dtype: torch.dtype, requires_grad: bool = False):
    return SimpleNamespace(device=torch.device(device), dtype=dtype, requires_grad=requires_grad)


@pytest.fixture(autouse=True)
def _no_forced_backend(monkeypatch):
    monkeypatch.delenv("SVIMG_BACKEND", raising=False)


@pytest.fixture
def without_triton(monkeypatch):
    """Pretend that triton does not import."""
    real = _dispatch._module
    monkeypatch.setattr(_dispatch, "_module", lambda name: None if name.startswith("triton") else real(name))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_float_defaults_to_cython_until_something_is_measured(dtype, monkeypatch):
    """Asked about a tensor alone, before any timing, the dispatch names the compiled kernel of the device."""
    from svimg import _timing

    monkeypatch.setattr(_timing, "_CHOICES", {})
    assert _dispatch.backend_for(_like("cpu", dtype)) == ("cython" if HAS_CYTHON else "torch")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cpu_half_defaults_to_torch(dtype):
    """Half types on the CPU: only torch runs them (the Triton interpreter is never a default)."""
    assert _dispatch.backend_for(_like("cpu", dtype)) == "torch"


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_cuda_defaults_to_triton(dtype, monkeypatch):
    from svimg import _timing

    monkeypatch.setattr(_timing, "_CHOICES", {})  # before any timing
    assert _dispatch.backend_for(_like("cuda", dtype)) == "triton"


@pytest.mark.parametrize(
    "x",
    [_like("cuda", torch.int64), _like("cuda", torch.complex64), _like("cuda", torch.float32, requires_grad=True)],
    ids=["int64", "complex64", "requires-grad"],
)
def test_cuda_falls_back_to_torch_for_unsupported_inputs(x):
    with torch.enable_grad():
        assert _dispatch.backend_for(x) == "torch"


def test_cuda_without_triton_uses_torch(without_triton):
    assert _dispatch.backend_for(_like("cuda", torch.float32)) == "torch"
    assert "triton" not in _dispatch.available_backends()


@pytest.mark.parametrize("value", ["torch", " Torch ", "TORCH"])
def test_forcing_torch_always_works(monkeypatch, value):
    monkeypatch.setenv("SVIMG_BACKEND", value)
    for x in (_like("cpu", torch.float32), _like("cuda", torch.bfloat16), _like("cpu", torch.int32)):
        assert _dispatch.backend_for(x) == "torch"


def test_unknown_forced_backend_is_a_value_error(monkeypatch):
    monkeypatch.setenv("SVIMG_BACKEND", "opencl")
    with pytest.raises(ValueError, match="SVIMG_BACKEND must be one of .* got 'opencl'"):
        _dispatch.backend_for(_like("cpu", torch.float32))


@pytest.mark.skipif(not HAS_CYTHON, reason="the Cython extension is not built")
def test_forced_cython_rejects_half_and_cuda(monkeypatch):
    monkeypatch.setenv("SVIMG_BACKEND", "cython")
    assert _dispatch.backend_for(_like("cpu", torch.float64)) == "cython"
    with pytest.raises(RuntimeError, match="SVIMG_BACKEND=cython .* does not run torch.float16 tensors on cpu"):
        _dispatch.backend_for(_like("cpu", torch.float16))
    with pytest.raises(RuntimeError, match="does not run torch.float32 tensors on cuda"):
        _dispatch.backend_for(_like("cuda", torch.float32))


def test_forced_triton_when_not_installed(monkeypatch, without_triton):
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="SVIMG_BACKEND=triton was requested but it is not installed"):
        _dispatch.backend_for(_like("cuda", torch.float32))


@needs_triton
def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch):
    """CPU tensors run Triton only when its kernels were built for the interpreter."""
    tt = _dispatch._module("triton")
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    monkeypatch.setattr(tt, "INTERPRETED", True)
    assert _dispatch.backend_for(_like("cpu", torch.bfloat16)) == "triton"
    monkeypatch.setattr(tt, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match="CPU tensors need TRITON_INTERPRET=1"):
        _dispatch.backend_for(_like("cpu", torch.float32))


@needs_triton
def test_forced_triton_rejects_integer_tensors(monkeypatch):
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    with pytest.raises(RuntimeError, match="does not run torch.int32 tensors"):
        _dispatch.backend_for(_like("cuda", torch.int32))


def test_time_apply_runs_the_chosen_backend(monkeypatch):
    """time_apply hands the Triton backend the ELL tables of M; torch multiplies by M itself."""
    calls = []
    fake_triton = SimpleNamespace(band_apply=lambda x2d, cols, w: calls.append((cols, w)) or x2d)
    real = _dispatch._module
    monkeypatch.setattr(_dispatch, "_module", lambda name: fake_triton if name == "triton" else real(name))
    monkeypatch.setattr(_dispatch, "backend_for", lambda x, M=None, factors=(): "triton")
    M = TemporalPSF(3, boundary="zero").matrix(4)
    x = torch.ones(4, 1, 2, 2)
    out = _dispatch.time_apply(x, M)
    assert out.shape == x.shape and len(calls) == 1
    cols, weights = calls[0]
    dense = np.zeros((4, 4))
    np.add.at(dense, (np.arange(4)[:, None].repeat(cols.shape[1], 1), cols), weights)
    np.testing.assert_array_equal(dense, M)


def test_cg_engine_only_for_the_triton_backend(monkeypatch):
    M = np.eye(3)
    b = torch.ones(3, 4)
    monkeypatch.setenv("SVIMG_BACKEND", "torch")
    assert _dispatch.cg_engine(M, b, b) is None


@needs_triton
@pytest.mark.triton
def test_cg_engine_under_forced_triton(monkeypatch):
    if not _dispatch._interpreting() and not torch.cuda.is_available():
        pytest.skip("Triton kernels are compiled for CUDA and there is no GPU")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    monkeypatch.setenv("SVIMG_BACKEND", "triton")
    b = torch.ones(3, 4, device=device)
    engine = _dispatch.cg_engine(np.eye(3), b, torch.zeros_like(b))
    assert engine is not None and engine.start() == pytest.approx(12.0)
    assert _dispatch.cg_engine(np.eye(3), b, torch.zeros(3, 4, dtype=torch.float64, device=device)) is None


def test_measured_choice_is_cached_and_logged(monkeypatch, caplog):
    """The first call of a problem class times every candidate; the fastest is kept, logged with its reason."""
    if not HAS_CYTHON:
        pytest.skip("only torch runs CPU tensors here")
    from svimg import _timing

    monkeypatch.setattr(_timing, "_CHOICES", {})
    timed = []

    def fake_seconds(run, device):
        timed.append(run.args[0])
        return {"cython": 2e-3, "torch": 1e-3}[run.args[0]]

    monkeypatch.setattr(_timing, "_median_seconds", fake_seconds)
    x = torch.rand(5, 1, 3, 3)
    M = TemporalPSF(3).matrix(5)
    with caplog.at_level("DEBUG", logger="svimg.dispatch"):
        assert _dispatch.backend_for(x, M) == "torch"
        assert _dispatch.backend_for(x, M) == "torch"
    assert sorted(timed) == ["cython", "torch"]  # measured once
    assert "torch was fastest" in caplog.text and "cython 2 ms" in caplog.text
    (reason,) = [r for _, r in _timing.choices().values()]
    assert "float32 (5, 1, 3, 3), " in reason
    assert _dispatch.backend_for(x) == "torch"  # a question about x alone reuses the measurement
