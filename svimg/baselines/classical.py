"""The paper's classical baselines: CG alone and ADMM with 3-D total variation.

Both take ``(y, op, ...)`` like :func:`svimg.sample`, start from zeros and
return the restoration in ``y``'s type (xarray with provenance attrs).
"""

from __future__ import annotations

import torch

from .._provenance import provenance
from .._validate import check_positive_int, check_positive_number
from ..sampling._common import prepare_problem
from ..sampling.dds import DEFAULT_CG_ITERS, DEFAULT_NFE
from ..solvers import admm_tv as _admm_tv_solver
from ..solvers.admm_tv import tv_dims
from ..solvers.cg import conjugate_gradient, normal_system

__all__ = ["cg_only", "admm_tv"]


def cg_only(y, op, *, n_iter: int = DEFAULT_NFE * DEFAULT_CG_ITERS, tol: float = 1e-5, device=None,
            channel_axis: int | None = None):
    """CG on A^T A x = A^T y from x = 0, without any prior (the paper's "CG" baseline and ablation).

    ``n_iter`` defaults to the sampler's total data-step budget, nfe * cg_iters
    = 20 * 5 = 100 iterations; CG stops earlier once ||A^T y - A^T A x|| < ``tol``.
    The result (the frames aligned with y, see ``op.margins``) is clamped to [0, 1]; ``channel_axis`` as in
    :func:`svimg.sample`.
    """
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    tol = check_positive_number(tol, "tol", allow_zero=True)
    problem = prepare_problem(y, op, device, channel_axis)
    with torch.no_grad():
        x0 = torch.zeros(problem.x_shape, dtype=problem.dtype, device=problem.device)
        H, b = normal_system(op, problem.y, x0, None)
        x, _ = conjugate_gradient(H, b, x0, n_iter, tol)
    attrs = provenance("baselines.cg_only", op, n_iter=n_iter, tol=tol, device=str(problem.device))
    return problem.vol.wrap(problem.aligned(x).clamp(0, 1), attrs)


def admm_tv(y, op, *, lam: float = 1e-3, rho: float = 1.0, n_iter: int = 30, cg_iters: int = 20,
            axes="tyx", device=None, channel_axis: int | None = None):
    """ADMM-TV: min_x 1/2 ||A x - y||^2 + lam * sum_{d in axes} ||D_d x||_1 from x = 0.

    Anisotropic TV with forward differences along ``axes`` (default t, y, x:
    the paper's 3-D TV); ``n_iter`` ADMM iterations of ``cg_iters`` CG steps each,
    penalty ``rho`` (paper: 30, 20, rho = 1, lam = 0.001).  See
    :func:`svimg.solvers.admm_tv`.  The result (aligned with y) is clamped to [0, 1]; ``channel_axis`` as in
    :func:`svimg.sample`.
    """
    dims = tv_dims(axes)
    problem = prepare_problem(y, op, device, channel_axis)
    with torch.no_grad():
        x0 = torch.zeros(problem.x_shape, dtype=problem.dtype, device=problem.device)
        x, _ = _admm_tv_solver(op, problem.y, x0, lam=lam, rho=rho, n_iter=n_iter, cg_iters=cg_iters, dims=dims)
    attrs = provenance("baselines.admm_tv", op, lam=lam, rho=rho, n_iter=n_iter, cg_iters=cg_iters,
                       axes="".join(axes), device=str(problem.device))
    return problem.vol.wrap(problem.aligned(x).clamp(0, 1), attrs)
