"""Argument checks shared by the public API: one clear error per bad input."""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

import torch

__all__ = [
    "check_volume", "check_finite", "finite_check_during", "take_finite_check", "value_range", "check_data_range", "check_positive_int", "check_positive_number",
    "check_unit_interval",
]


def check_volume(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a non-empty, real, floating (T, C, H, W) tensor."""
    if x.ndim != 4:
        raise ValueError(f"{name} must be a (T, C, H, W) volume, got a tensor of shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); every axis needs at least one element")
    if x.is_complex() or not x.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point array (float16/32/64), got dtype {x.dtype}")
    return x


def _raise_non_finite(x: torch.Tensor, name: str) -> None:
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or Inf); clean or mask them first")


def check_finite(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise when ``x`` holds NaN or Inf, saying how many.

    One summing pass: a finite sum proves every element finite (a NaN or Inf
    term makes the sum NaN or Inf); only a non-finite sum, which finite values
    can also give by overflow, is followed by an exact count.
    """
    if x.numel() and not math.isfinite(float(x.sum())):
        _raise_non_finite(x, name)
    return x


_PENDING: contextvars.ContextVar = contextvars.ContextVar("svimg_pending_finite_check", default=None)


@contextlib.contextmanager
def finite_check_during(x: torch.Tensor, name: str = "x"):
    """Check ``x`` for NaN/Inf as part of the work in the ``with`` block, then raise like :func:`check_finite`.

    A kernel that reads every element of ``x`` anyway may take the check over
    (:func:`take_finite_check`) so that it costs no pass of its own; otherwise
    :func:`check_finite` runs after the block.  Nothing is checked when the block raises.
    """
    state = {"tensor": x, "finite": False}
    token = _PENDING.set(state)
    try:
        yield
    finally:
        _PENDING.reset(token)
    if not state["finite"]:
        check_finite(x, name)  # also where a kernel saw NaN/Inf: the exact count and the error come from here


def take_finite_check(x: torch.Tensor):
    """``report(finite)`` for a kernel about to read all of ``x`` when ``x`` is the tensor being checked, else None."""
    state = _PENDING.get()
    if state is None or state["tensor"] is not x:
        return None
    return lambda finite: state.update(finite=bool(finite))


def value_range(x: torch.Tensor, name: str = "x") -> tuple[float, float]:
    """(min, max) of ``x`` in one pass (``torch.aminmax``), raising like :func:`check_finite` on NaN or Inf:
    NaN propagates into both ends and an Inf shows at one, so finite ends mean a finite volume."""
    if x.numel() == 0:
        return 0.0, 0.0
    low, high = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        _raise_non_finite(x, name)
    return low, high


def check_data_range(x: torch.Tensor, name: str = "y", gain: float = 1.0, known_range=None) -> torch.Tensor:
    """Raise when ``x`` lies far outside the values a video in [0, 1] can give: below ``-g`` or above ``2 g``.

    ``g = max(1, gain)``, where ``gain`` is how far the operator can scale a [0, 1]
    video (e.g. ``max |A 1|``).  A measurement of 8-bit values stored as floats
    (0..255) is the usual cause; noise and moderate over/undershoot pass.
    ``known_range`` is x's (min, max) when the caller has it already (no pass over x).
    """
    g = max(1.0, float(gain))
    low, high = known_range if known_range is not None else (float(v) for v in torch.aminmax(x))
    if low < -g or high > 2 * g:
        raise ValueError(
            f"{name} holds values from {low:.4g} to {high:.4g}, far outside the expected [0, 1] "
            f"(accepted: [{-g:.3g}, {2 * g:.3g}]); rescale it to [0, 1], e.g. divide 8-bit data by 255"
        )
    return x


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_positive_number(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float > 0 (>= 0 with ``allow_zero``) or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


def check_unit_interval(value, name: str, *, open_low: bool = False) -> float:
    """Return ``value`` as a float in [0, 1] (or (0, 1] with ``open_low``) or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r}")
    low_ok = value > 0 if open_low else value >= 0
    if not (low_ok and value <= 1):
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return float(value)


def check_gamma(gamma) -> float | None:
    """None (the noise-free data step A^T A x = A^T y) or a positive weight of (I + gamma A^T A) x = x0 + gamma A^T y."""
    return None if gamma is None else check_positive_number(gamma, "gamma")


def check_callback(callback, usage: str = ""):
    """``callback`` if it is None or callable, else TypeError (``usage`` shows how it is called)."""
    if callback is not None and not callable(callback):
        how = f" as {usage}" if usage else ""
        raise TypeError(f"callback must be callable{how} or None, got {type(callback).__name__}")
    return callback

