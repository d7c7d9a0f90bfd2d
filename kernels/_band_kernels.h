/* Inner loops of svimg's CPU kernels, compiled once per instruction set.
 *
 * band_stage_*: one banded T x T matrix applied to a block of n pixel time series,
 *     out[t, p] = (recur[t] ? out[t - 1, p] : 0) + sum_k w[t, k] * in[cols[t, k], p],
 *   rows of `in` / `out` being `in_stride` / `out_stride` elements apart.  With
 *   recur[t] set, row t is the previous output row plus the *difference* of the
 *   matrix rows t and t - 1 (two taps for a box kernel: a running sum).
 * copy_row_*: a row copied into a block buffer, noting on the way whether it holds NaN or Inf.
 * conv_rows_*: a centred 1-D convolution with zero boundary along each of
 *   n_rows contiguous rows of length W, out[r, i] = sum_j g[j] * in[r, i + j - K/2].
 *
 * ISA: GCC's target_clones builds an AVX-512, an AVX2 and a baseline copy of
 * each function and picks one at load time from the CPU it runs on (never from the
 * build machine); svimg_isa() names the one chosen.
 */
#ifndef SVIMG_BAND_KERNELS_H
#define SVIMG_BAND_KERNELS_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SVIMG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SVIMG_CAN_REPORT_ISA 1
#else
#define SVIMG_CLONES
#define SVIMG_CAN_REPORT_ISA 0
#endif

static const char *svimg_isa(void)
{
#if SVIMG_CAN_REPORT_ISA
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512f";
    if (__builtin_cpu_supports("avx2"))
        return "avx2";
    return "baseline (sse2)";
#else
    return "compiler default";
#endif
}

/* Both kernels accumulate up to four taps per sweep over a row, so each output
 * element is loaded and stored once per four taps and stays in a register between. */
#define SVIMG_DEFINE_KERNELS(real, suffix)                                                              \
/* dst[i] = src[i]; returns 1 when some src[i] is NaN or Inf (x - x is 0 exactly for finite x). */       \
SVIMG_CLONES int copy_row_##suffix(const real *restrict src, real *restrict dst, ptrdiff_t n)          \
{                                                                                                       \
    int bad = 0;                                                                                        \
    for (ptrdiff_t i = 0; i < n; i++) {                                                                 \
        dst[i] = src[i];                                                                                \
        bad |= !(src[i] - src[i] == 0);                                                                 \
    }                                                                                                   \
    return bad;                                                                                         \
}                                                                                                       \
                                                                                                        \
SVIMG_CLONES void band_stage_##suffix(ptrdiff_t T, ptrdiff_t width, const int *cols, const real *w,     \
                                      const unsigned char *recur, const real *in, ptrdiff_t in_stride,  \
                                      real *out, ptrdiff_t out_stride, ptrdiff_t n)                     \
{                                                                                                       \
    for (ptrdiff_t t = 0; t < T; t++) {                                                                 \
        real *restrict row = out + t * out_stride;                                                      \
        const int *c = cols + t * width;                                                                \
        const real *wt = w + t * width;                                                                 \
        const real *s[4] = {in, in, in, in};                                                            \
        real a[4] = {0, 0, 0, 0};                                                                       \
        int m = 0, first = 1;                                                                           \
        if (recur[t]) {                                                                                 \
            const real *prev = out + (t - 1) * out_stride;                                              \
            for (ptrdiff_t p = 0; p < n; p++) row[p] = prev[p];                                         \
            first = 0;                                                                                  \
        }                                                                                               \
        for (ptrdiff_t k = 0; k <= width; k++) {                                                        \
            if (k < width && wt[k] != 0) {                                                              \
                s[m] = in + (ptrdiff_t)c[k] * in_stride;                                                \
                a[m++] = wt[k];                                                                         \
            }                                                                                           \
            if (m == 4 || (k == width && (m > 0 || first))) {                                           \
                const real *restrict s0 = s[0], *restrict s1 = s[1], *restrict s2 = s[2], *restrict s3 = s[3]; \
                const real a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                  \
                if (first) {                                                                            \
                    switch (m) {                                                                        \
                    case 0: for (ptrdiff_t p = 0; p < n; p++) row[p] = 0; break;                        \
                    case 1: for (ptrdiff_t p = 0; p < n; p++) row[p] = a0 * s0[p]; break;               \
                    case 2: for (ptrdiff_t p = 0; p < n; p++) row[p] = a0 * s0[p] + a1 * s1[p]; break;  \
                    case 3: for (ptrdiff_t p = 0; p < n; p++)                                           \
                                row[p] = a0 * s0[p] + a1 * s1[p] + a2 * s2[p]; break;                   \
                    default: for (ptrdiff_t p = 0; p < n; p++)                                          \
                                row[p] = a0 * s0[p] + a1 * s1[p] + a2 * s2[p] + a3 * s3[p];             \
                    }                                                                                   \
                } else {                                                                                \
                    switch (m) {                                                                        \
                    case 0: break;                                                                      \
                    case 1: for (ptrdiff_t p = 0; p < n; p++) row[p] += a0 * s0[p]; break;              \
                    case 2: for (ptrdiff_t p = 0; p < n; p++) row[p] += a0 * s0[p] + a1 * s1[p]; break; \
                    case 3: for (ptrdiff_t p = 0; p < n; p++)                                           \
                                row[p] += a0 * s0[p] + a1 * s1[p] + a2 * s2[p]; break;                  \
                    default: for (ptrdiff_t p = 0; p < n; p++)                                          \
                                row[p] += a0 * s0[p] + a1 * s1[p] + a2 * s2[p] + a3 * s3[p];            \
                    }                                                                                   \
                }                                                                                       \
                m = 0;                                                                                  \
                first = 0;                                                                              \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
}                                                                                                       \
                                                                                                        \
SVIMG_CLONES void conv_rows_##suffix(const real *in, real *out, ptrdiff_t n_rows, ptrdiff_t W,          \
                                     const real *g, ptrdiff_t K)                                        \
{                                                                                                       \
    const ptrdiff_t c = K / 2;                                                                          \
    for (ptrdiff_t r = 0; r < n_rows; r++) {                                                            \
        const real *restrict src = in + r * W;                                                          \
        real *restrict dst = out + r * W;                                                               \
        for (ptrdiff_t i = 0; i < W; i++) dst[i] = 0;                                                   \
        ptrdiff_t j = 0;                                                                                \
        for (; j + 1 < K; j += 2) { /* taps j, j + 1: shifts s and s + 1 */                             \
            const ptrdiff_t s = j - c;                                                                  \
            const real g0 = g[j], g1 = g[j + 1];                                                        \
            ptrdiff_t lo = s < 0 ? -s : 0, hi = W - (s + 1 > 0 ? s + 1 : 0);                            \
            if (s < 0 && lo - 1 < W) dst[lo - 1] += g1 * src[0];   /* only tap j + 1 reaches i = lo - 1 */ \
            for (ptrdiff_t i = lo; i < hi; i++) dst[i] += g0 * src[i + s] + g1 * src[i + s + 1];        \
            if (s >= 0 && hi >= 0) dst[hi] += g0 * src[W - 1];     /* only tap j reaches i = hi */      \
        }                                                                                               \
        for (; j < K; j++) {                                                                            \
            const ptrdiff_t s = j - c;                                                                  \
            const real g0 = g[j];                                                                       \
            ptrdiff_t lo = s < 0 ? -s : 0, hi = s > 0 ? W - s : W;                                      \
            for (ptrdiff_t i = lo; i < hi; i++) dst[i] += g0 * src[i + s];                              \
        }                                                                                               \
    }                                                                                                   \
}

SVIMG_DEFINE_KERNELS(float, f32)
SVIMG_DEFINE_KERNELS(double, f64)

#endif
