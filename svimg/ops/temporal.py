"""Temporal point-spread functions: a 1-D convolution along the time axis.

Convention (a true convolution, as ``scipy.ndimage.convolve1d``)::

    y[t] = sum_j k[j] x[b(t - j + c)],    c = len(k) // 2

The boundary says what the frames past either end of the clip are:

``"valid"`` (the default: a clip cut from a longer recording)
    No rule: the unknown video is longer than the measurement.  Its frames
    reach ``lead = len(k) - 1 - c`` frames before the first measured exposure
    and ``c`` frames after the last one, and the measurement has a row only
    where an exposure is complete: T_x unknown frames give
    ``T_y = T_x - len(k) + 1`` rows, ``y[t] = sum_j k[j] x[t + len(k) - 1 - j]``.
    Unknown frame ``t + lead`` is the centre of exposure t (:attr:`TemporalPSF.margins`).
    Per pixel, ``len(k) - 1`` time series are invisible to it (for a box of width
    k: period k, zero sum over a period).
``"circular"`` (the paper's reference code), ``"reflect"`` (half-sample symmetric, d c b a | a b c d | d c b a), ``"replicate"`` (clamp), ``"zero"`` (the term is dropped)
    ``b`` maps an out-of-range index back into [0, T): T frames in, T out.

For a given T_x the operator is a (T_y, T_x) matrix M acting on every pixel's
time series; the adjoint is M^T and the normal operator M^T M (T_x x T_x), each
applied in one pass by :mod:`svimg._dispatch`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .. import _dispatch
from .._validate import check_positive_int, check_positive_number
from .base import AxisFactors, LinearOperator

__all__ = ["TemporalPSF", "BOUNDARIES", "DEFAULT_BOUNDARY"]

BOUNDARIES = ("valid", "circular", "zero", "reflect", "replicate")
DEFAULT_BOUNDARY = "valid"


def _boundary_index(i: int, T: int, boundary: str) -> int | None:
    """Map frame index ``i`` into [0, T), or None where the zero boundary drops it."""
    if 0 <= i < T:
        return i
    if boundary == "circular":
        return i % T
    if boundary in ("zero", "valid"):  # "valid": the square matrix's rows that are complete are kept
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
    boundary : {"valid", "circular", "zero", "reflect", "replicate"}
        What lies beyond either end (module docstring).  "valid" (the default)
        models a clip cut from a longer recording: ``support - 1`` more unknown
        frames than measured ones, no invented frames.  The adjoint is always the
        exact M^T; M is square and symmetric (self-adjoint) only for a symmetric kernel
        with the circular, zero or reflect boundary, never with "replicate".
    normalize : bool
        Scale the kernel to sum to 1 (the default; a PSF conserves intensity).
    """

    def __init__(self, width: int | None = None, *, kernel=None, boundary: str = DEFAULT_BOUNDARY, normalize: bool = True):
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
    def uniform(cls, width: int, boundary: str = DEFAULT_BOUNDARY) -> "TemporalPSF":
        """Box PSF averaging ``width`` frames."""
        return cls(width, boundary=boundary)

    @classmethod
    def gaussian(cls, sigma: float = 1.0, truncate: float = 3.0, boundary: str = DEFAULT_BOUNDARY) -> "TemporalPSF":
        """Sampled Gaussian ``exp(-j^2 / (2 sigma^2))`` for |j| <= round(truncate * sigma), normalised to sum 1."""
        sigma = check_positive_number(sigma, "sigma")
        radius = int(check_positive_number(truncate, "truncate") * sigma + 0.5)
        j = np.arange(-radius, radius + 1, dtype=np.float64)
        return cls(kernel=np.exp(-0.5 * (j / sigma) ** 2), boundary=boundary)

    @property
    def support(self) -> int:
        """Number of taps of the kernel (frames one output frame depends on)."""
        return self.kernel.size

    @property
    def support_t(self) -> int:
        return self.support

    @property
    def margins(self) -> tuple[int, int]:
        """(lead, trail): unknown frames before the first and after the last measured exposure's centre.

        ``(support - 1 - c, c)`` with c = support // 2 for "valid", (0, 0) for every other boundary.
        """
        if self.boundary != "valid":
            return (0, 0)
        c = self.support // 2
        return (self.support - 1 - c, c)

    def output_shape(self, input_shape):
        extra = sum(self.margins)
        if input_shape[0] <= extra:
            raise ValueError(f"{self!r} needs more than {extra} frames (one complete exposure), got {input_shape[0]}")
        return (input_shape[0] - extra, *input_shape[1:])

    def input_shape(self, output_shape):
        if output_shape[0] < 1:
            raise ValueError(f"{self!r} needs at least one measured frame, got {output_shape[0]}")
        return (output_shape[0] + sum(self.margins), *output_shape[1:])

    def _square_entries(self, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, columns, weights) of the T x T matrix of the boundary rule, repeated positions to be summed:
        row t takes weight k[j] at the frame the rule maps t - j + support // 2 to ("valid": the zero rule)."""
        k, c = self.kernel, self.kernel.size // 2
        entries = [(t, s, w) for t in range(T) for j, w in enumerate(k)
                   if (s := _boundary_index(t - j + c, T, self.boundary)) is not None]
        rows, cols, weights = zip(*entries) if entries else ((), (), ())
        return np.array(rows, dtype=np.intp), np.array(cols, dtype=np.intp), np.array(weights, dtype=np.float64)

    @functools.lru_cache(maxsize=32)
    def _square(self, T: int) -> np.ndarray:
        """The T x T matrix of the boundary rule ("valid": the zero boundary's, whose complete rows M keeps)."""
        rows, cols, weights = self._square_entries(T)
        M = np.zeros((T, T))
        np.add.at(M, (rows, cols), weights)
        M.setflags(write=False)
        return M

    def _rows(self, T: int) -> slice:
        """The rows of ``_square(T)`` that M keeps (all but the incomplete exposures for "valid")."""
        lead, trail = self.margins
        return slice(lead, T - trail)

    @functools.lru_cache(maxsize=32)
    def matrix(self, T: int) -> np.ndarray:
        """The (T_y, T) float64 matrix M with y = M x along time for T input frames (read-only)."""
        self.output_shape((T,))
        M = np.ascontiguousarray(self._square(T)[self._rows(T)])
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
        T = x.shape[0]
        self.output_shape(tuple(x.shape))
        return _dispatch.time_apply(x, self._square(T))[self._rows(T)]

    def adjoint(self, y):
        T = self.input_shape(tuple(y.shape))[0]
        if self.boundary != "valid":
            return _dispatch.time_apply(y, self._square(T).T)
        lead, trail = self.margins  # M^T y = S^T (y padded with the incomplete rows as zeros)
        padded = torch.cat([y.new_zeros((lead, *y.shape[1:])), y, y.new_zeros((trail, *y.shape[1:]))])
        return _dispatch.time_apply(padded, self._square(T).T)

    def normal(self, x):
        """M^T M x in one pass (no intermediate volume; the CPU kernel may run M and M^T per pixel block)."""
        T = x.shape[0]
        if self.boundary == "valid":
            return _dispatch.time_apply(x, self._normal_matrix(T))
        M = self.matrix(T)
        return _dispatch.time_apply(x, self._normal_matrix(T), factors=(M, M.T))

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
