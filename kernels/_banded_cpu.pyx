# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""CPU kernels for banded matrices along one axis: the temporal PSF and the separable blur.

``stages_apply(x, stages)``: a (T, P) volume through banded T x T matrices in
turn, ``x -> M_k ... M_2 M_1 x``, each matrix given as a stage table
``(cols, weights, recur)`` (see ``svimg._dispatch.band_plan``)::

    out[t, p] = (recur[t] ? out[t - 1, p] : 0) + sum_k weights[t, k] * in[cols[t, k], p]

A row with ``recur`` set holds the difference of two consecutive matrix rows,
so a box kernel costs two taps per voxel whatever its width (a running sum).
``band_apply(x, cols, weights)`` is the one-stage case without recurrences
(plain ELL form, ``svimg._dispatch.ell_form``).

Pixels are processed in blocks: a block's T time series are gathered into a
contiguous buffer (rows P apart in the volume would fight over the same cache
sets) small enough to stay in L2 through every stage, so intermediate results
never reach memory and each voxel is read once and written once; blocks run
in parallel with OpenMP on volumes large enough to pay for a thread team
(OMP_NUM_THREADS caps it), and the GIL is released throughout.

``blur_apply(x, cols, weights, g)``: a zero-boundary separable blur of a
(B, H, W) stack, the H pass as one stage (tables of the H x H band matrix)
and the W pass as a 1-D convolution with ``g`` along each row.

The inner loops live in ``_band_kernels.h``, compiled for AVX-512, AVX2+FMA
and a baseline, chosen when the module loads (``isa()`` names the choice).
"""

import numpy as np

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc

cdef extern from "_band_kernels.h" nogil:
    const char *svimg_isa()
    void band_stage_f32(Py_ssize_t T, Py_ssize_t width, const int *cols, const float *w, const unsigned char *recur,
                        const float *inp, Py_ssize_t in_stride, float *out, Py_ssize_t out_stride, Py_ssize_t n)
    void band_stage_f64(Py_ssize_t T, Py_ssize_t width, const int *cols, const double *w, const unsigned char *recur,
                        const double *inp, Py_ssize_t in_stride, double *out, Py_ssize_t out_stride, Py_ssize_t n)
    int copy_row_f32(const float *src, float *dst, Py_ssize_t n)
    int copy_row_f64(const double *src, double *dst, Py_ssize_t n)
    void conv_rows_f32(const float *inp, float *out, Py_ssize_t n_rows, Py_ssize_t W, const float *g, Py_ssize_t K)
    void conv_rows_f64(const double *inp, double *out, Py_ssize_t n_rows, Py_ssize_t W, const double *g, Py_ssize_t K)

ctypedef fused real:
    float
    double

cdef enum:
    MAX_STAGES = 4
    BLOCK_BYTES = 1 << 17  # one block's T time series: the gathered input and a stage's output stay in L2
    MIN_BLOCK = 16
    MAX_BLOCK = 1 << 16
    PARALLEL_MIN_WORK = 1 << 18  # voxel-taps below which a thread team costs more than it saves


def isa():
    """The instruction set the kernels run with on this CPU (chosen at load time)."""
    return svimg_isa().decode()


cdef struct Plan:
    Py_ssize_t n_stages, T, P, block
    Py_ssize_t width[MAX_STAGES]
    const int *cols[MAX_STAGES]
    const void *weights[MAX_STAGES]
    const unsigned char *recur[MAX_STAGES]


cdef inline void _stage(const Plan *plan, Py_ssize_t s, const real *inp, Py_ssize_t in_stride, real *out,
                        Py_ssize_t out_stride, Py_ssize_t n) noexcept nogil:
    if real is float:
        band_stage_f32(plan.T, plan.width[s], plan.cols[s], <const float *> plan.weights[s], plan.recur[s],
                       inp, in_stride, out, out_stride, n)
    else:
        band_stage_f64(plan.T, plan.width[s], plan.cols[s], <const double *> plan.weights[s], plan.recur[s],
                       inp, in_stride, out, out_stride, n)


cdef inline int _copy_row(const real *src, real *dst, Py_ssize_t n) noexcept nogil:
    if real is float:
        return copy_row_f32(src, dst, n)
    else:
        return copy_row_f64(src, dst, n)


cdef int _block(const Plan *plan, const real *x, real *out, real *scratch, Py_ssize_t b) noexcept nogil:
    """All stages on pixels [b * block, ...): the block's time series are first gathered into scratch
    (rows P apart in x would all fall into the same cache sets), the stages ping-pong between the two
    halves of scratch and the last writes out.  Returns 1 when the block's input holds NaN or Inf."""
    cdef Py_ssize_t start = b * plan.block
    cdef Py_ssize_t n = min(plan.block, plan.P - start)
    cdef Py_ssize_t s, t, last = plan.n_stages - 1
    cdef real *src = scratch
    cdef real *dst
    cdef int bad = 0
    for t in range(plan.T):
        bad |= _copy_row(x + t * plan.P + start, scratch + t * n, n)
    for s in range(plan.n_stages):
        dst = out + start if s == last else scratch + ((s + 1) % 2) * plan.T * n
        _stage(plan, s, src, n, dst, plan.P if s == last else n, n)
        src = dst
    return bad


cdef Py_ssize_t _run(const Plan *plan, const real *x, real *out) noexcept nogil:
    """Every block (in parallel when large); returns the number of blocks whose input holds NaN or Inf."""
    cdef Py_ssize_t n_blocks = (plan.P + plan.block - 1) // plan.block
    cdef Py_ssize_t b, work = plan.T * plan.P * plan.n_stages
    cdef Py_ssize_t bad = 0
    cdef real *scratch = NULL
    cdef size_t scratch_bytes = 2 * plan.T * plan.block * sizeof(real)
    if n_blocks > 1 and work >= PARALLEL_MIN_WORK:
        with parallel():
            scratch = <real *> malloc(scratch_bytes)
            for b in prange(n_blocks, schedule="static"):
                bad += _block(plan, x, out, scratch, b)
            free(scratch)
    else:
        scratch = <real *> malloc(scratch_bytes)
        for b in range(n_blocks):
            bad += _block(plan, x, out, scratch, b)
        free(scratch)
    return bad


def _block_size(Py_ssize_t T, Py_ssize_t itemsize):
    """Pixels per block: the block's T time series fill about BLOCK_BYTES, a multiple of 16 pixels."""
    cdef Py_ssize_t n = BLOCK_BYTES // (T * itemsize)
    return max(MIN_BLOCK, min(MAX_BLOCK, (n // 16) * 16))


def _check_volume(x, int ndim, str shape):
    x = np.ascontiguousarray(x)
    if x.ndim != ndim:
        raise ValueError(f"x must be a {shape} array, got shape {x.shape}")
    if x.dtype != np.float32 and x.dtype != np.float64:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    return x


def _check_stage(cols, weights, recur, Py_ssize_t T, dtype):
    cols = np.ascontiguousarray(cols, dtype=np.intc)
    weights = np.ascontiguousarray(weights, dtype=dtype)
    recur = np.ascontiguousarray(recur, dtype=np.uint8)
    if cols.ndim != 2 or cols.shape != weights.shape or cols.shape[0] != T or recur.shape != (T,):
        raise ValueError(f"ELL tables {cols.shape}/{weights.shape} do not fit {T} frames")
    if cols.size and (cols.min() < 0 or cols.max() >= T):
        raise ValueError("ELL column index out of range")
    if T and recur[0]:
        raise ValueError("the first row of a stage cannot recur on a previous one")
    return cols, weights, recur


def stages_apply(x, stages, bint report_finite=False):
    """Return ``M_k ... M_1 x`` for a (T, P) float32/float64 array ``x``; ``stages`` lists (cols, weights, recur).

    With ``report_finite`` return ``(out, finite)``, ``finite`` telling whether every element of x
    is finite (found while gathering the input, at no extra pass).
    """
    x = _check_volume(x, 2, "(T, P)")
    cdef Py_ssize_t T = x.shape[0], s
    if not 1 <= len(stages) <= MAX_STAGES:
        raise ValueError(f"between 1 and {MAX_STAGES} stages are supported, got {len(stages)}")
    tables = [_check_stage(*stage, T, x.dtype) for stage in stages]  # kept alive while the kernel runs
    cdef Plan plan
    cdef const int[:, ::1] cols
    cdef const unsigned char[::1] recur
    cdef const float[:, ::1] w32
    cdef const double[:, ::1] w64
    plan.n_stages, plan.T, plan.P = len(tables), T, x.shape[1]
    plan.block = _block_size(T, x.itemsize)
    out = np.empty_like(x)
    cdef Py_ssize_t bad = 0
    if x.size == 0:
        return (out, True) if report_finite else out
    for s, (c, w, r) in enumerate(tables):
        cols, recur = c, r
        plan.width[s], plan.cols[s], plan.recur[s] = c.shape[1], &cols[0, 0], &recur[0]
        if x.dtype == np.float32:
            w32 = w
            plan.weights[s] = &w32[0, 0]
        else:
            w64 = w
            plan.weights[s] = &w64[0, 0]
    cdef const float[:, ::1] x32
    cdef float[:, ::1] o32
    cdef const double[:, ::1] x64
    cdef double[:, ::1] o64
    if x.dtype == np.float32:
        x32, o32 = x, out
        with nogil:
            bad = _run[float](&plan, &x32[0, 0], &o32[0, 0])
    else:
        x64, o64 = x, out
        with nogil:
            bad = _run[double](&plan, &x64[0, 0], &o64[0, 0])
    return (out, bad == 0) if report_finite else out


def band_apply(x, cols, weights):
    """Return ``M @ x`` for a (T, P) float32/float64 array ``x`` and M in ELL form (cols (T, W), weights (T, W))."""
    x = _check_volume(x, 2, "(T, P)")
    cols = np.asarray(cols)
    return stages_apply(x, [(cols, weights, np.zeros(cols.shape[0] if cols.ndim else 0, np.uint8))])


cdef void _blur_slab(const real *x, real *out, real *scratch, Py_ssize_t H, Py_ssize_t W, const Plan *plan,
                     const real *g, Py_ssize_t K) noexcept nogil:
    _stage(plan, 0, x, W, scratch, W, W)
    if real is float:
        conv_rows_f32(scratch, out, H, W, g, K)
    else:
        conv_rows_f64(scratch, out, H, W, g, K)


cdef void _blur_run(const real *x, real *out, Py_ssize_t B, Py_ssize_t H, Py_ssize_t W, const Plan *plan,
                    const real *g, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t b
    cdef real *scratch = NULL
    if B > 1 and B * H * W * K >= PARALLEL_MIN_WORK:
        with parallel():
            scratch = <real *> malloc(H * W * sizeof(real))
            for b in prange(B, schedule="static"):
                _blur_slab(x + b * H * W, out + b * H * W, scratch, H, W, plan, g, K)
            free(scratch)
    else:
        scratch = <real *> malloc(H * W * sizeof(real))
        for b in range(B):
            _blur_slab(x + b * H * W, out + b * H * W, scratch, H, W, plan, g, K)
        free(scratch)


def blur_apply(x, cols, weights, g):
    """Separable zero-boundary blur of a (B, H, W) float32/float64 array: the H x H band matrix (ELL form)
    along H, then ``out[b, i, j] = sum_k g[k] tmp[b, i, j + k - len(g) // 2]`` along W."""
    x = _check_volume(x, 3, "(B, H, W)")
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2]
    c, w, r = _check_stage(cols, weights, np.zeros(H, np.uint8), H, x.dtype)
    taps = np.ascontiguousarray(g, dtype=x.dtype)
    if taps.ndim != 1 or taps.size == 0:
        raise ValueError(f"g must be a non-empty 1-D kernel, got shape {taps.shape}")
    cdef Plan plan
    cdef const int[:, ::1] cv = c
    cdef const unsigned char[::1] rv = r
    plan.n_stages, plan.T, plan.P, plan.block = 1, H, W, W
    plan.width[0], plan.cols[0], plan.recur[0] = c.shape[1], &cv[0, 0], &rv[0]
    out = np.empty_like(x)
    cdef const float[:, :, ::1] x32
    cdef float[:, :, ::1] o32
    cdef const float[::1] g32, w32
    cdef const double[:, :, ::1] x64
    cdef double[:, :, ::1] o64
    cdef const double[::1] g64, w64
    if x.size == 0:
        return out
    if x.dtype == np.float32:
        x32, o32, g32, w32 = x, out, taps, w.reshape(-1)
        plan.weights[0] = &w32[0]
        with nogil:
            _blur_run[float](&x32[0, 0, 0], &o32[0, 0, 0], B, H, W, &plan, &g32[0], g32.shape[0])
    else:
        x64, o64, g64, w64 = x, out, taps, w.reshape(-1)
        plan.weights[0] = &w64[0]
        with nogil:
            _blur_run[double](&x64[0, 0, 0], &o64[0, 0, 0], B, H, W, &plan, &g64[0], g64.shape[0])
    return out
