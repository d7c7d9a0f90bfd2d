# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""CPU kernel: apply a banded T x T matrix along time, in parallel over pixels.

``out[t, p] = sum_k weights[t, k] * x[cols[t, k], p]`` for a (T, P) volume, the
matrix given in ELL form (see ``svimg._dispatch.ell_form``).  Forward, adjoint
and normal temporal operators are all this one loop with different tables.
The GIL is released; on volumes large enough to pay for a thread team, blocks
of pixels run in parallel with OpenMP (when built with it; OMP_NUM_THREADS
caps the team).
"""

import numpy as np

from cython.parallel cimport prange

ctypedef fused real:
    float
    double

cdef enum:
    BLOCK = 512  # pixels per work item: a few cache lines per frame
    PARALLEL_MIN_WORK = 1 << 18  # multiply-adds below which a thread team costs more than it saves


cdef inline void _apply_block(const real[:, ::1] x, const int[:, ::1] cols, const real[:, ::1] weights,
                              real[:, ::1] out, Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """out[:, start:stop] = M @ x[:, start:stop], frame by frame.

    The pixel loops run over raw row pointers so the compiler vectorises them.
    """
    cdef Py_ssize_t t, k, p, n = stop - start
    cdef real w
    cdef real* row
    cdef const real* src
    for t in range(x.shape[0]):
        row = &out[t, start]
        for p in range(n):
            row[p] = 0
        for k in range(cols.shape[1]):
            w = weights[t, k]
            if w == 0:
                continue
            src = &x[cols[t, k], start]
            for p in range(n):
                row[p] += w * src[p]


cdef void _band_apply(const real[:, ::1] x, const int[:, ::1] cols, const real[:, ::1] weights,
                      real[:, ::1] out) noexcept:
    """Pixel blocks in parallel (OpenMP) for large volumes, serially for small ones; the GIL released either way."""
    cdef Py_ssize_t P = x.shape[1]
    cdef Py_ssize_t n_blocks = (P + BLOCK - 1) // BLOCK
    cdef Py_ssize_t b
    if n_blocks > 1 and x.shape[0] * cols.shape[1] * P >= PARALLEL_MIN_WORK:
        for b in prange(n_blocks, nogil=True, schedule="static"):
            _apply_block(x, cols, weights, out, b * BLOCK, min(b * BLOCK + BLOCK, P))
    else:
        with nogil:
            for b in range(n_blocks):
                _apply_block(x, cols, weights, out, b * BLOCK, min(b * BLOCK + BLOCK, P))


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
