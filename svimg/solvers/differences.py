"""Forward differences along axes of a (T, C, H, W) volume, their adjoint, and the temporal Laplacian.

``(D_d x)_i = x_{i+1} - x_i`` along dim d (one fewer sample, so no boundary term) and
``(D_d^T v)_i = v_{i-1} - v_i`` with ``v_{-1} = v_{n-1} = 0``.  Along time,
``L = D_t^T D_t`` is the T x T matrix with 1, 2, ..., 2, 1 on the diagonal and -1 beside it
(a Neumann second difference): ``<x, L x> = ||D_t x||^2``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["finite_difference", "finite_difference_adjoint", "temporal_laplacian", "laplacian_matrix"]

BLOCK = 1 << 20  # elements of temporal_laplacian's block of differences (4-8 MB)


def finite_difference(x: torch.Tensor, dims: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """D x: the forward differences x[i+1] - x[i] along each dim in ``dims``."""
    return tuple(torch.diff(x, dim=d) for d in dims)


def finite_difference_adjoint(v: tuple[torch.Tensor, ...], dims: tuple[int, ...], shape,
                              out: torch.Tensor | None = None) -> torch.Tensor:
    """D^T v = sum_d D_d^T v_d, with (D_d^T v)_i = v_{i-1} - v_i (terms outside 0..n-2 are zero).
    With ``out`` (a tensor of ``shape``) the sum is added to it in place and ``out`` is returned."""
    for vd, d in zip(v, dims):
        if out is None:
            out = vd.new_zeros(shape)
        n = shape[d]
        if n > 1:
            out.narrow(d, 0, n - 1).sub_(vd)
            out.narrow(d, 1, n - 1).add_(vd)
    return out


def temporal_laplacian(x: torch.Tensor, weights: torch.Tensor | float | None = None,
                       out: torch.Tensor | None = None) -> torch.Tensor:
    """L x = D_t^T D_t x along dim 0 (module docstring), or D_t^T diag(weights) D_t x with ``weights`` a
    number or a tensor broadcast over the (T - 1, C, H, W) differences.  With ``out`` the result is added
    to it in place (out + L x), a few frames at a time: the only temporary is one block of differences
    (:data:`BLOCK` elements), which stays in the cache and in memory malloc already holds."""
    if out is None:
        out = torch.zeros_like(x)
    T = x.shape[0]
    per_pair = isinstance(weights, torch.Tensor) and weights.ndim == x.ndim and weights.shape[0] == T - 1
    step = max(1, BLOCK * T // max(1, x.numel()))
    for i in range(0, T - 1, step):
        j = min(i + step, T - 1)
        d = x[i + 1:j + 1] - x[i:j]  # (D_t x)_k for k in i..j-1
        if weights is not None:
            d.mul_(weights[i:j] if per_pair else weights)
        reached = out[i:j + 1]  # the frames D_t^T d touches
        finite_difference_adjoint((d,), (0,), reached.shape, reached)
    return out


def laplacian_matrix(T: int) -> np.ndarray:
    """L as a T x T float64 matrix."""
    D = np.diff(np.eye(T), axis=0)
    return D.T @ D
