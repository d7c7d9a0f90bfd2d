# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""CPU kernel: apply a banded T x T matrix along time, in parallel over pixels.

``out[t, p] = sum_k weights[t, k] * x[cols[t, k], p]`` for a (T, P) volume, the
matrix given in ELL form (see ``svimg._dispatch.ell_form``).  Forward, adjoint
and normal temporal operators are all this one loop with different tables.
The GIL is released; pixel blocks run in parallel with OpenMP when built with it.
"""

import numpy as np

from cython.parallel cimport prange

ctypedef fused real:
    float
    double

DEF BLOCK = 512


cdef void _band_apply(const real[:, ::1] x, const int[:, ::1] cols, const real[:, ::1] weights,
                      real[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t T = x.shape[0], P = x.shape[1], W = cols.shape[1]
    cdef Py_ssize_t n_blocks = (P + BLOCK - 1) // BLOCK
    cdef Py_ssize_t b, t, k, p, start, stop, src
    cdef real w
    for b in prange(n_blocks, schedule="static"):
        start = b * BLOCK
        stop = start + BLOCK
        if stop > P:
            stop = P
        for t in range(T):
            for p in range(start, stop):
                out[t, p] = 0
            for k in range(W):
                w = weights[t, k]
                if w == 0:
                    continue
                src = cols[t, k]
                for p in range(start, stop):
                    out[t, p] += w * x[src, p]


def band_apply(x, cols, weights):
    """Return ``M @ x`` for a (T, P) float32/float64 array ``x`` and M in ELL form.

    ``cols`` is (T, W) integer, ``weights`` (T, W) float; weights are cast to x's dtype.
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be a (T, P) array, got shape {x.shape}")
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    cols = np.ascontiguousarray(cols, dtype=np.intc)
    weights = np.ascontiguousarray(weights, dtype=x.dtype)
    if cols.shape != weights.shape or cols.shape[0] != x.shape[0]:
        raise ValueError(f"ELL tables {cols.shape}/{weights.shape} do not fit {x.shape[0]} frames")
    if cols.size and (cols.min() < 0 or cols.max() >= x.shape[0]):
        raise ValueError("ELL column index out of range")
    out = np.empty_like(x)
    if x.dtype == np.float32:
        _band_apply[float](x, cols, weights, out)
    else:
        _band_apply[double](x, cols, weights, out)
    return out
