"""The noise-free normal system solved directly in the eigenbasis of a separable operator.

When A = s (M_t ⊗ M_c ⊗ M_h ⊗ M_w) (:meth:`svimg.ops.LinearOperator.kronecker`), the
normal matrix factors too: with M_a^T M_a = Q_a diag(l_a) Q_a^T per axis,

    A^T A = Q diag(lambda) Q^T,   Q = ⊗_a Q_a,   lambda = s^2 ⊗_a l_a,

so in the coordinates v^ = Q^T v the system A^T A x = b (b = A^T y) decouples into
lambda_i x^_i = b^_i.  Starting from x0 the solve sets x^_i = b^_i / lambda_i on the
components where the data speak and keeps x^0_i on the others, leaving untouched the
largest set of smallest-lambda components whose residual still satisfies the tolerance::

    r^ = b^ - lambda x^0,   untouched = the k smallest lambda_i, k largest with
                            sum over untouched of r^_i^2 <= rtol^2 ||r^||^2

Components with lambda_i = 0 (the null space of A) are always untouched, so the prior's
content survives where A sees nothing.  Cost: a few dense n x n products per axis,
instead of hundreds of CG iterations on ill-conditioned systems (the 13 x 13 blur).
"""

from __future__ import annotations

import numpy as np
import torch

from .cg import _dot

__all__ = ["eigenbasis_solve"]

_LAMBDA_FLOOR = 1e-14  # eigenvalues below this times the largest are treated as zero (float64 eigh accuracy)


def _along(v: torch.Tensor, axis: int, m: torch.Tensor) -> torch.Tensor:
    """Apply the matrix m to every fibre of v along ``axis``: (m v) along that axis (batched GEMMs, no transposed copy
    for the last two axes)."""
    if axis == v.ndim - 1:
        return torch.matmul(v, m.T)
    if axis == v.ndim - 2:
        return torch.matmul(m, v)
    return torch.movedim(torch.tensordot(v, m, dims=([axis], [1])), -1, axis)


class _Eigenbasis:
    """Q_a and lambda for the normal matrix of A at one input shape (module docstring)."""

    def __init__(self, factors, shape, device, dtype):
        lam = np.ones([1] * len(shape))
        self.q = {}
        for axis, m in sorted(factors.matrices.items()):
            l_a, q_a = np.linalg.eigh(m.T @ m)
            lam = lam * np.clip(l_a, 0.0, None).reshape([-1 if i == axis else 1 for i in range(len(shape))])
            self.q[axis] = torch.as_tensor(q_a, device=device, dtype=dtype)
        self.lam = torch.as_tensor(factors.scale**2 * lam, device=device, dtype=dtype)

    def to_eigen(self, v: torch.Tensor) -> torch.Tensor:
        for axis, q in self.q.items():
            v = _along(v, axis, q.T)
        return v

    def from_eigen(self, v: torch.Tensor) -> torch.Tensor:
        for axis, q in self.q.items():
            v = _along(v, axis, q)
        return v.contiguous()


def _untouched(lam: torch.Tensor, energy: torch.Tensor, rtol: float) -> torch.Tensor:
    """Boolean mask (lam's shape) of the components left at x0: the most smallest-lambda ones the tolerance allows."""
    lam_flat, energy_flat = lam.reshape(-1), energy.reshape(-1)
    order = torch.argsort(lam_flat)
    budget = rtol**2 * float(energy_flat.sum())
    k = int(torch.searchsorted(torch.cumsum(energy_flat[order], 0), torch.tensor(budget, dtype=energy.dtype,
                                                                                   device=energy.device), right=True))
    k = max(k, int((lam_flat <= _LAMBDA_FLOOR * float(lam_flat.max())).sum()))
    mask = torch.zeros_like(lam_flat, dtype=torch.bool)
    mask[order[:k]] = True
    return mask.reshape(lam.shape)


def eigenbasis_solve(op, y: torch.Tensor, x0: torch.Tensor, rtol: float,
                     aty: torch.Tensor | None = None) -> tuple[torch.Tensor, float] | None:
    """x with ||A^T A x - A^T y|| <= rtol ||A^T A x0 - A^T y|| in one direct solve (module docstring).

    ``aty``: A^T y when the caller has it.  Returns ``(x, measured relative residual)`` in x0's
    dtype (the residual recomputed with ``op.normal``, so it includes rounding), or None when
    ``op`` is not separable at this shape.
    """
    factors = op.kronecker(tuple(x0.shape))
    if factors is None:
        return None
    b = op.adjoint(y) if aty is None else aty
    r0 = b - op.normal(x0)
    r0_norm = float(_dot(r0, r0)) ** 0.5
    if r0_norm == 0:
        return x0.clone(), 0.0
    basis = _Eigenbasis(factors, x0.shape, x0.device, x0.dtype)
    r_hat = basis.to_eigen(r0)
    del r0
    summed = tuple(i for i, n in enumerate(basis.lam.shape) if n == 1)
    energy = (r_hat * r_hat).sum(dim=summed, keepdim=True) if summed else r_hat * r_hat
    keep = _untouched(basis.lam, energy, rtol)
    step_hat = torch.where(keep, torch.zeros((), dtype=x0.dtype, device=x0.device),
                           r_hat / torch.where(keep, torch.ones_like(basis.lam), basis.lam))
    del r_hat
    x = x0 + basis.from_eigen(step_hat)
    r = b - op.normal(x)
    return x, float(_dot(r, r)) ** 0.5 / r0_norm
