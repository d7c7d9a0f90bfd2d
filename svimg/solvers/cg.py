"""Conjugate gradients on a whole volume at once.

Solves ``H x = b`` for a symmetric positive (semi-)definite H given as a function.
Inner products run over every axis, time included: the temporal PSF couples
frames, so splitting the video into independent frames (as image toolkits do
along the batch axis) would solve a different problem.
"""

from __future__ import annotations

from typing import Callable

import torch

__all__ = ["conjugate_gradient", "normal_system"]


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> summed over all elements, accumulated in float64."""
    return torch.sum(a * b, dtype=torch.float64)


def normal_system(op, y: torch.Tensor, x0: torch.Tensor | None, gamma: float | None):
    """The system CG solves for a data step.

    Without ``gamma``: ``A^T A x = A^T y``.  With ``gamma`` (DDS's regularised
    form for noisy data): ``(I + gamma A^T A) x = x0 + gamma A^T y``.
    Returns ``(H, b)`` with H a function.
    """
    aty = op.adjoint(y)
    if gamma is None:
        return op.normal, aty
    g = float(gamma)
    return (lambda v: v + g * op.normal(v)), x0 + g * aty


def conjugate_gradient(
    H: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor,
    n_iter: int,
    tol: float = 1e-5,
    callback: Callable[[int, torch.Tensor, float], None] | None = None,
) -> tuple[torch.Tensor, list[float]]:
    """Run at most ``n_iter`` CG iterations on H x = b from ``x0`` (not modified).

    The recurrence::

        r0 = b - H x0, p0 = r0
        alpha_k = <r_k, r_k> / <p_k, H p_k>
        x_{k+1} = x_k + alpha_k p_k,  r_{k+1} = r_k - alpha_k H p_k
        p_{k+1} = r_{k+1} + (<r_{k+1}, r_{k+1}> / <r_k, r_k>) p_k

    stops once ||r|| < ``tol`` (also when the residual or the curvature
    <p, H p> is exactly zero).  ``callback(k, x_k, ||r_k||)`` runs after each
    iteration.  Returns the iterate and the residual norms ||r_0||, ||r_1||, ...
    """
    x = x0.clone()
    r = b - H(x)
    p = r.clone()
    rs = _dot(r, r)
    history = [float(rs.sqrt())]
    for k in range(1, n_iter + 1):
        if history[-1] < tol or rs == 0:
            break
        Hp = H(p)
        curvature = _dot(p, Hp)
        if curvature <= 0:
            break
        alpha = (rs / curvature).to(x.dtype)
        x.add_(alpha * p)
        r.sub_(alpha * Hp)
        rs_new = _dot(r, r)
        history.append(float(rs_new.sqrt()))
        if callback is not None:
            callback(k, x, history[-1])
        p = r + (rs_new / rs).to(x.dtype) * p
        rs = rs_new
    return x, history
