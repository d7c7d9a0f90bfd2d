"""A backend that raises is dropped for its problem class with one warning, and the next candidate runs
(svimg._fallback; used by the dispatch's timing and by CG's fused engine)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch

from svimg import _dispatch, _fallback, _timing
from svimg.ops import TemporalPSF
from svimg.solvers import cg


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.delenv("SVIMG_BACKEND", raising=False)
    monkeypatch.setattr(_fallback, "_DROPPED", {})
    monkeypatch.setattr(_timing, "_CHOICES", {})
    monkeypatch.setattr(cg, "_FUSED_TRIED", set())


def _broken(message):
    def run(*args, **kwargs):
        raise RuntimeError(message)

    return run


def test_first_working_drops_a_failing_candidate_once():
    calls = []
    candidates = {"fast": lambda: calls.append("fast") or _broken("no kernel image for sm_90")(),
                  "reference": lambda: calls.append("reference") or 42}
    with pytest.warns(RuntimeWarning, match=r"'fast' failed .*RuntimeError: no kernel image for sm_90"):
        assert _fallback.first_working("engine", "class A", candidates) == ("reference", 42)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, and the dropped candidate is not tried again
        assert _fallback.first_working("engine", "class A", candidates) == ("reference", 42)
    assert calls == ["fast", "reference", "reference"]
    assert _fallback.dropped("engine") == {("engine", "class A", "fast"): "RuntimeError: no kernel image for sm_90"}
    calls.clear()
    with pytest.warns(RuntimeWarning):  # another problem class tries it afresh
        _fallback.first_working("engine", "class B", candidates)
    assert calls == ["fast", "reference"]


def test_when_every_candidate_fails_the_last_error_propagates():
    with pytest.warns(RuntimeWarning, match="'a' failed"), pytest.raises(ValueError, match="reference broke"):
        _fallback.first_working("engine", 0, {"a": _broken("a broke"), "b": lambda: (_ for _ in ()).throw(
            ValueError("reference broke"))})
    assert list(_fallback.dropped()) == [("engine", 0, "a")]  # the reference is never dropped


def test_keyboard_interrupt_is_not_a_failure():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fallback.first_working("engine", 0, {"a": interrupted, "b": lambda: 1})
    assert _fallback.dropped() == {}


def test_dispatch_drops_a_kernel_that_raises_while_timed(monkeypatch):
    """An injected compiled kernel that raises: one warning naming it and its error; torch's result comes back."""
    fake = SimpleNamespace(stages_apply=_broken("illegal instruction in the injected kernel"))
    real = _dispatch._module
    monkeypatch.setattr(_dispatch, "_module", lambda name: fake if name == "cython" else real(name))
    x = torch.rand(6, 1, 4, 4)
    psf = TemporalPSF(3, boundary="circular")  # time_apply takes a square T x T matrix
    expected = torch.tensor(psf.matrix(6), dtype=torch.float32) @ x.reshape(6, -1)
    with pytest.warns(RuntimeWarning, match=r"time backend 'cython' failed .*illegal instruction in the injected"):
        out = _dispatch.time_apply(x, psf.matrix(6))
    torch.testing.assert_close(out.reshape(6, -1), expected)
    assert _dispatch.backend_for(x, psf.matrix(6)) == "torch"
    (reason,) = [r for _, r in _timing.choices().values()]
    assert "cython dropped (RuntimeError: illegal instruction" in reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _dispatch.time_apply(x, psf.matrix(6))  # the class is settled: no new warning


def test_dispatch_raises_when_the_only_other_candidate_fails_too(monkeypatch):
    fake = SimpleNamespace(stages_apply=_broken("kernel broke"))
    real = _dispatch._module
    monkeypatch.setattr(_dispatch, "_module", lambda name: fake if name == "cython" else real(name))
    monkeypatch.setattr(_dispatch, "_apply_with", lambda backend, *a: _broken(f"{backend} broke")())
    with pytest.warns(RuntimeWarning, match="'cython' failed"), pytest.raises(RuntimeError, match="torch broke"):
        _dispatch.time_apply(torch.rand(4, 3), TemporalPSF(3, boundary="circular").matrix(4))


class _EngineFailing:
    """A stand-in fused CG engine that fails in ``step`` (the first launch of the update kernels)."""

    def __init__(self, M, b2d, x2d):
        self.x = x2d.clone()

    def start(self):
        return 1.0

    def step(self):
        raise RuntimeError("PTX for the update kernel does not compile")


@pytest.mark.parametrize("where", ["build", "step"])
def test_cg_falls_back_to_torch_when_the_fused_engine_fails(monkeypatch, where):
    psf = TemporalPSF(5)
    x = torch.rand(8, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    H, b = cg.normal_system(psf, psf.forward(x), torch.zeros_like(x), 1.0)
    expected, expected_history = cg.conjugate_gradient(H, b, torch.zeros_like(b), 5)
    assert _fallback.dropped() == {}  # the reference run (CPU): no fused engine was a candidate
    monkeypatch.setattr(_dispatch, "fused_cg_applies", lambda b2d, x2d: True)
    engine = _broken("no CUDA device for the fused engine") if where == "build" else _EngineFailing
    monkeypatch.setattr(_dispatch, "cg_engine", engine)
    with pytest.warns(RuntimeWarning, match="cg backend 'triton' failed .*(no CUDA device|does not compile)"):
        out, history = cg.conjugate_gradient(H, b, torch.zeros_like(b), 5)
    torch.testing.assert_close(out, expected)
    assert history == expected_history
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.conjugate_gradient(H, b, torch.zeros_like(b), 5)  # dropped for the class: torch, silently
