"""ADMM for least squares with anisotropic total variation over chosen axes of a (T, C, H, W) volume.

Problem::

    min_x  1/2 ||A x - y||^2 + lam * sum_d ||D_d x||_1

with D_d the forward difference along axis d, ``(D_d x)_i = x_{i+1} - x_i``
(one fewer sample along d, so no boundary term), and its exact adjoint
``(D_d^T v)_i = v_{i-1} - v_i`` with ``v_{-1} = v_{n-1} = 0``.  Scaled ADMM
with the split z_d = D_d x (Boyd et al. 2011, section 6.4.1; the protocol of
DiffusionMBIR's ADMM-TV baseline)::

    x   <- solve (A^T A + rho D^T D) x = A^T y + rho D^T (z - u)     (cg_iters CG steps, warm start)
    z_d <- soft(D_d x + u_d, lam / rho)
    u_d <- u_d + D_d x - z_d

The 3-D TV of the paper's ADMM-TV baseline uses axes (t, y, x) = dims (0, 2, 3);
DiffusionMBIR's data step uses t only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validate import check_positive_int, check_positive_number
from .cg import conjugate_gradient
from .differences import finite_difference, finite_difference_adjoint

__all__ = ["TVSplit", "admm_tv", "finite_difference", "finite_difference_adjoint", "soft_threshold", "tv_dims"]

AXIS_DIMS = {"t": 0, "y": 2, "x": 3}


def tv_dims(axes) -> tuple[int, ...]:
    """Axis names ("t", "y", "x", e.g. "tyx" or ("t",)) -> tensor dims of a (T, C, H, W) volume."""
    names = tuple(axes)
    if not names or any(a not in AXIS_DIMS for a in names) or len(set(names)) != len(names):
        raise ValueError(f"axes must be distinct names among 't', 'y', 'x' (e.g. 'tyx' or ('t',)), got {axes!r}")
    return tuple(AXIS_DIMS[a] for a in names)


def soft_threshold(v: torch.Tensor, threshold: float) -> torch.Tensor:
    """sign(v) max(|v| - threshold, 0), the proximal map of threshold * ||.||_1."""
    return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0)


@dataclass
class TVSplit:
    """The ADMM auxiliaries: z_d (approximating D_d x) and the scaled duals u_d, one per TV axis."""

    z: tuple[torch.Tensor, ...]
    u: tuple[torch.Tensor, ...]

    @classmethod
    def zeros(cls, x: torch.Tensor, dims: tuple[int, ...]) -> "TVSplit":
        z = tuple(torch.zeros_like(g) for g in finite_difference(x, dims))
        return cls(z, tuple(torch.zeros_like(g) for g in z))


def admm_tv(op, y: torch.Tensor, x0: torch.Tensor, *, lam: float = 1e-3, rho: float = 1.0, n_iter: int = 30,
            cg_iters: int = 20, dims: tuple[int, ...] = (0, 2, 3), split: TVSplit | None = None,
            tol: float = 1e-5) -> tuple[torch.Tensor, TVSplit]:
    """``n_iter`` ADMM iterations (module docstring) from ``x0`` (not modified) on tensors.

    ``split`` carries z and u over from an earlier call (DiffusionMBIR runs one
    iteration per diffusion step and keeps them); None starts them at zero.
    Each x-update runs at most ``cg_iters`` CG iterations (tolerance ``tol``)
    warm-started from the current x.  Returns ``(x, split)``.
    """
    lam = check_positive_number(lam, "lam", allow_zero=True)
    rho = check_positive_number(rho, "rho")
    if not dims:
        raise ValueError("dims must name at least one axis to take differences along")
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    cg_iters = check_positive_int(cg_iters, "cg_iters", minimum=0)
    shape = tuple(x0.shape)
    if split is None:
        split = TVSplit.zeros(x0, dims)
    aty = op.adjoint(y)

    def H(v):
        return op.normal(v) + rho * finite_difference_adjoint(finite_difference(v, dims), dims, shape)

    x, z, u = x0.clone(), split.z, split.u
    for _ in range(n_iter):
        b = aty + rho * finite_difference_adjoint(tuple(zd - ud for zd, ud in zip(z, u)), dims, shape)
        x, _ = conjugate_gradient(H, b, x, cg_iters, tol)
        dx = finite_difference(x, dims)
        z = tuple(soft_threshold(g + ud, lam / rho) for g, ud in zip(dx, u))
        u = tuple(ud + g - zd for ud, g, zd in zip(u, dx, z))
    return x, TVSplit(z, u)
