"""The last data step of a windowed run over the WHOLE video, a block of frames at a time (out of core).

With ``A = S P`` (per-frame part S, temporal PSF P as the (T_y, T) matrix M; T_y = T
except for the "valid" boundary, T - support + 1) the normal system of the whole
video is ``A^T A = (S^T S) (M^T M)``; M^T M is T x T and
banded (circularly for the circular boundary), so ``(A^T A v)[s:e]`` needs only
the frames of v its rows touch.  :func:`global_data_step` runs ``n_iter``
conjugate-gradient iterations on::

    A^T A x = A^T y                       (gamma None)
    (I + gamma A^T A) x = x0 + gamma A^T y

from x0 = the blended windows, with x, r, p and H p held in arrays that may
live on disk (``numpy.memmap``) and only ``block`` frames (plus the band) in
memory.  Inner products are accumulated in float64 block by block.  The result
is the same recurrence as :func:`svimg.solvers.cg.conjugate_gradient` up to
float rounding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import torch

from ..ops.temporal import TemporalPSF

__all__ = ["psf_sparse", "global_data_step"]


def psf_sparse(psf: TemporalPSF, T: int) -> scipy.sparse.csr_matrix:
    """``psf.matrix(T)`` for T input frames as a sparse (T_y, T) matrix: the rows ``psf._rows(T)`` of the boundary
    rule's square matrix (``psf._square_entries(T)``, built without a dense array)."""
    psf.output_shape((T,))  # a clear error for fewer frames than one complete exposure
    rows, cols, weights = psf._square_entries(T)
    return scipy.sparse.csr_matrix((weights, (rows, cols)), shape=(T, T))[psf._rows(T)]


def _rows_times(matrix: scipy.sparse.csr_matrix, s: int, e: int, read) -> torch.Tensor:
    """``(matrix @ v)[s:e]`` where ``read(frames)`` returns v at those frames as a (n, ...) tensor."""
    rows = matrix[s:e]
    cols = np.unique(rows.indices)
    v = read(cols)
    dense = torch.as_tensor(rows[:, cols].toarray(), dtype=v.dtype)
    return (dense @ v.reshape(len(cols), -1)).reshape(e - s, *v.shape[1:])


def global_data_step(psf: TemporalPSF, spatial, read_y, x, scratch, n_iter: int, gamma=None, block: int = 16,
                     tol: float = 1e-5, rtol: float = 0.0) -> None:
    """At most ``n_iter`` CG iterations on the whole video's normal system (module docstring), in place on ``x``.

    Stops once ||r|| < max(tol, rtol ||r_0||).

    ``x``: (T, C, H, W) float array (in memory or a memmap) of every unknown frame, the start and the
    result; ``scratch``: three more arrays like x (r, p, H p); ``read_y(frames)``
    returns the measurement at those frames (indices into its T_y frames) as a tensor; ``spatial`` the
    per-frame operator (``Identity`` for none).
    """
    T = x.shape[0]
    M = psf_sparse(psf, T)
    N, MT = (M.T @ M).tocsr(), M.T.tocsr()
    r, p, Hp = scratch
    spans = [(s, min(s + block, T)) for s in range(0, T, block)]

    def tensor(a, s, e):
        return torch.from_numpy(np.asarray(a[s:e]))

    def normal(src, dst):  # dst = H src
        for s, e in spans:
            h = spatial.normal(_rows_times(N, s, e, lambda f: torch.from_numpy(np.asarray(src[f]))))
            dst[s:e] = (h if gamma is None else tensor(src, s, e) + gamma * h).numpy()

    def dot(a, b) -> float:
        return float(sum(torch.sum(tensor(a, s, e) * tensor(b, s, e), dtype=torch.float64) for s, e in spans))

    normal(x, Hp)
    for s, e in spans:  # r = b - H x, p = r
        aty = _rows_times(MT, s, e, lambda f: spatial.adjoint(read_y(f)))
        b = aty if gamma is None else tensor(x, s, e) + gamma * aty
        r[s:e] = (b - tensor(Hp, s, e)).numpy()
        p[s:e] = r[s:e]
    rs = dot(r, r)
    stop = max(tol, rtol * rs ** 0.5)
    for _ in range(n_iter):
        if rs ** 0.5 < stop or rs == 0:
            break
        normal(p, Hp)
        curvature = dot(p, Hp)
        if curvature <= 0:
            break
        alpha = x.dtype.type(rs / curvature)
        for s, e in spans:
            x[s:e] += alpha * p[s:e]
            r[s:e] -= alpha * Hp[s:e]
        rs_new = dot(r, r)
        beta = x.dtype.type(rs_new / rs)
        for s, e in spans:
            p[s:e] = r[s:e] + beta * p[s:e]
        rs = rs_new
