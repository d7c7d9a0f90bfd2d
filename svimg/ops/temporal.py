"""Temporal point-spread functions: a 1-D convolution along the time axis.

Convention (a true convolution, as ``scipy.ndimage.convolve1d``)::

    y[t] = sum_j k[j] x[b(t - j + c)],    c = len(k) // 2

where ``b`` maps an out-of-range frame index back into [0, T) according to the
boundary: ``"circular"`` (i mod T, the reference code's choice), ``"reflect"``
(half-sample symmetric, d c b a | a b c d | d c b a), ``"replicate"`` (clamp)
or ``"zero"`` (the term is dropped).  For a given T the operator is a T x T
matrix M acting on every pixel's time series; the adjoint is M^T and the normal
operator M^T M, each applied in one pass by :mod:`svimg._dispatch`.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import _dispatch
from .._validate import check_positive_int, check_positive_number
from .base import AxisFactors, LinearOperator

__all__ = ["TemporalPSF", "BOUNDARIES"]

BOUNDARIES = ("circular", "zero", "reflect", "replicate")


def _boundary_index(i: int, T: int, boundary: str) -> int | None:
    """Map frame index ``i`` into [0, T), or None where the zero boundary drops it."""
    if 0 <= i < T:
        return i
    if boundary == "circular":
        return i % T
    if boundary == "zero":
        return None
    if boundary == "replicate":
        return min(max(i, 0), T - 1)
    period = i % (2 * T)  # reflect
    return period if period < T else 2 * T - 1 - period


class TemporalPSF(LinearOperator):
    """Convolution along t with a 1-D kernel ``k`` (see the module docstring).

    Parameters
    ----------
    width : int, optional
        Uniform kernel of this many frames (``k[j] = 1 / width``).  The paper uses 7 and 13.
    kernel : 1-D array, optional
        Any kernel instead of ``width``.
    boundary : {"circular", "zero", "reflect", "replicate"}
        How frames beyond either end are filled.  The adjoint is always the
        exact M^T; M is symmetric (self-adjoint) only for a symmetric kernel
        with the circular, zero or reflect boundary, never with "replicate".
    normalize : bool
        Scale the kernel to sum to 1 (the default; a PSF conserves intensity).
    """

    def __init__(self, width: int | None = None, *, kernel=None, boundary: str = "circular", normalize: bool = True):
        if (width is None) == (kernel is None):
            raise ValueError("TemporalPSF needs exactly one of width=<int> or kernel=<1-D array>")
        if width is not None:
            kernel = np.ones(check_positive_int(width, "width"))
        try:
            k = np.array(kernel, dtype=np.float64)  # a private copy: later edits of the caller's array do not leak in
        except (TypeError, ValueError) as err:
            raise TypeError(f"kernel must be a 1-D array of real numbers, got {kernel!r}") from err
        if k.ndim != 1:
            raise ValueError(f"kernel must be 1-D, got an array of shape {k.shape}")
        if k.size == 0:
            raise ValueError("kernel is empty; give at least one tap")
        if not np.all(np.isfinite(k)):
            raise ValueError("kernel contains NaN or Inf")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        if normalize:
            total = k.sum()
            if not total > 0:
                raise ValueError(f"kernel must have a positive sum to be normalised, got sum {total:g}")
            k = k / total
        self.kernel = k
        self.kernel.setflags(write=False)
        self.boundary = boundary

    @classmethod
    def uniform(cls, width: int, boundary: str = "circular") -> "TemporalPSF":
        """Box PSF averaging ``width`` frames."""
        return cls(width, boundary=boundary)

    @classmethod
    def gaussian(cls, sigma: float = 1.0, truncate: float = 3.0, boundary: str = "circular") -> "TemporalPSF":
        """Sampled Gaussian ``exp(-j^2 / (2 sigma^2))`` for |j| <= round(truncate * sigma), normalised to sum 1."""
        sigma = check_positive_number(sigma, "sigma")
        radius = int(check_positive_number(truncate, "truncate") * sigma + 0.5)
        j = np.arange(-radius, radius + 1, dtype=np.float64)
        return cls(kernel=np.exp(-0.5 * (j / sigma) ** 2), boundary=boundary)

    @property
    def support(self) -> int:
        """Number of taps of the kernel (frames one output frame depends on)."""
        return self.kernel.size

    @functools.lru_cache(maxsize=32)
    def matrix(self, T: int) -> np.ndarray:
        """The T x T float64 matrix M with y = M x along time (read-only)."""
        k, c = self.kernel, self.kernel.size // 2
        M = np.zeros((T, T))
        for t in range(T):
            for j, w in enumerate(k):
                s = _boundary_index(t - j + c, T, self.boundary)
                if s is not None:
                    M[t, s] += w
        M.setflags(write=False)
        return M

    @functools.lru_cache(maxsize=32)
    def _normal_matrix(self, T: int) -> np.ndarray:
        N = self.matrix(T).T @ self.matrix(T)
        N.setflags(write=False)
        return N

    def kronecker(self, input_shape):
        return AxisFactors(matrices={0: self.matrix(input_shape[0])})

    def forward(self, x):
        return _dispatch.time_apply(x, self.matrix(x.shape[0]))

    def adjoint(self, y):
        return _dispatch.time_apply(y, self.matrix(y.shape[0]).T)

    def normal(self, x):
        """M^T M x in one pass (no intermediate volume; the CPU kernel may run M and M^T per pixel block)."""
        M = self.matrix(x.shape[0])
        return _dispatch.time_apply(x, self._normal_matrix(x.shape[0]), factors=(M, M.T))

    def __eq__(self, other):
        return (
            isinstance(other, TemporalPSF)
            and self.boundary == other.boundary
            and np.array_equal(self.kernel, other.kernel)
        )

    def __hash__(self):
        return hash((self.boundary, self.kernel.tobytes()))

    def __repr__(self):
        k = self.kernel
        if np.allclose(k, 1.0 / k.size):  # a normalised box: TemporalPSF(width) rebuilds it
            desc = f"{k.size}"
        else:
            desc = f"kernel=[{', '.join(f'{v:.4g}' for v in k)}]"
        return f"TemporalPSF({desc}, boundary={self.boundary!r})"
