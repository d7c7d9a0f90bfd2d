"""The data-consistency step of one sampling step, in [0, 1] units, over the whole video.

Starting from the denoised estimate x0, a few iterations on the normal system
(:func:`svimg.solvers.normal_system`)::

    A^T A x = A^T y                                (noise-free, gamma None)
    (I + gamma A^T A) x = x0 + gamma A^T y         (noisy data, DDS's regularised form)

with conjugate gradients (``"cg"``, the method) or steepest descent with an
exact line search (``"gd"``, the paper's ablation).  Inner products run over
all frames at once: the temporal PSF couples them.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..solvers.cg import conjugate_gradient, normal_system

__all__ = ["SOLVERS", "data_step", "steepest_descent"]

SOLVERS = ("cg", "gd")


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sum(a * b, dtype=torch.float64)


def steepest_descent(
    H: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor, n_iter: int, tol: float = 1e-5
) -> tuple[torch.Tensor, list[float]]:
    """At most ``n_iter`` steepest-descent steps on H x = b with exact line search, from ``x0`` (not modified)::

        r_k = b - H x_k,  alpha_k = <r_k, r_k> / <r_k, H r_k>,  x_{k+1} = x_k + alpha_k r_k

    Stops once ||r|| < ``tol``.  Returns the iterate and the residual norms ||r_0||, ||r_1||, ...
    """
    x = x0.clone()
    r = b - H(x)
    rs = _dot(r, r)
    history = [float(rs.sqrt())]
    for _ in range(n_iter):
        if history[-1] < tol:
            break
        Hr = H(r)
        curvature = _dot(r, Hr)
        if curvature <= 0:
            break
        alpha = (rs / curvature).to(x.dtype)
        x.add_(alpha * r)
        r.sub_(alpha * Hr)
        rs = _dot(r, r)
        history.append(float(rs.sqrt()))
    return x, history


def data_step(op, y: torch.Tensor, x0: torch.Tensor, n_iter: int, gamma: float | None = None,
              solver: str = "cg", tol: float = 1e-5) -> torch.Tensor:
    """``n_iter`` CG (or steepest-descent) iterations on the normal system, from x0 ([0, 1] units)."""
    if n_iter == 0:
        return x0.clone()
    H, b = normal_system(op, y, x0, gamma)
    run = conjugate_gradient if solver == "cg" else steepest_descent
    x, _ = run(H, b, x0, n_iter, tol)
    return x
