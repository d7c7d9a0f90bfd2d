"""The data-consistency step of one sampling step, in [0, 1] units, over the whole video.

Starting from the denoised estimate x0, a few iterations on the normal system
(:func:`svimg.solvers.normal_system`)::

    A^T A x = A^T y                                (noise-free)
    (I + gamma A^T A) x = x0 + gamma A^T y         (noisy data: the paper's fixed gamma, or
                                                    gamma = w_t from noise_std, see noise_level)

Noise-free, the LAST data step is exact: ||r|| / ||r_0|| < 1e-6.  When A is
separable (one matrix per axis: temporal PSFs, the blur, downsampling and their
products) and the solver is CG, it is one direct solve in the eigenbasis of A^T A
(:func:`svimg.solvers.eigenbasis.eigenbasis_solve`); otherwise, or to polish that
solve, CG runs until the tolerance (at most ``final_iters`` iterations).  Either
way the result fits the data while keeping the prior's content where A is
(nearly) blind.  The sampler picks the data step's dtype
(:func:`svimg.sampling.memory.working_set`): float64 on the CPU where it fits
(the prior network stays float32), else the input's dtype, as on CUDA
(float64 inner products in either case).

with conjugate gradients (``"cg"``, the method) or steepest descent with an
exact line search (``"gd"``, the paper's ablation).  Inner products run over
all frames at once: the temporal PSF couples them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..solvers.cg import _dot, conjugate_gradient, normal_system
from ..solvers.eigenbasis import eigenbasis_solve
from .noise_level import map_weight

__all__ = ["SOLVERS", "FINAL_RTOL", "DEFAULT_FINAL_CG_ITERS", "DataStep", "data_step",
           "steepest_descent"]

SOLVERS = ("cg", "gd")
FINAL_RTOL = 1e-6
DEFAULT_FINAL_CG_ITERS = 300


def steepest_descent(
    H: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor, n_iter: int, tol: float = 1e-5,
    rtol: float = 0.0,
) -> tuple[torch.Tensor, list[float]]:
    """At most ``n_iter`` steepest-descent steps on H x = b with exact line search, from ``x0`` (not modified)::

        r_k = b - H x_k,  alpha_k = <r_k, r_k> / <r_k, H r_k>,  x_{k+1} = x_k + alpha_k r_k

    Stops once ||r|| < ``tol``.  Returns the iterate and the residual norms ||r_0||, ||r_1||, ...
    """
    x = x0.clone()
    r = b - H(x)
    rs = _dot(r, r)
    history = [float(rs.sqrt())]
    stop = max(tol, rtol * history[0])
    for _ in range(n_iter):
        if history[-1] < stop:
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


def _solve(op, y, x0, n_iter, gamma, solver, tol, rtol=0.0, aty=None, smooth=0.0) -> tuple[torch.Tensor, list[float]]:
    H, b = normal_system(op, y, x0, gamma, aty, smooth)
    if solver == "cg":
        return conjugate_gradient(H, b, x0, n_iter, tol, rtol=rtol)
    return steepest_descent(H, b, x0, n_iter, tol, rtol=rtol)


def data_step(op, y: torch.Tensor, x0: torch.Tensor, n_iter: int, gamma: float | None = None,
              solver: str = "cg", tol: float = 1e-5) -> torch.Tensor:
    """``n_iter`` CG (or steepest-descent) iterations on the normal system, from x0 ([0, 1] units)."""
    if n_iter == 0:
        return x0.clone()
    return _solve(op, y, x0, n_iter, gamma, solver, tol)[0]


def motion_adaptive_smoothness(y: torch.Tensor, sigma_y: float, kappa: float, x_shape) -> torch.Tensor | float:
    """lam_p = sigma_y^2 / tau_p^2 (EXPERIMENT)."""
    import os
    mode = os.environ.get("SVIMG_SMOOTH_MODE", "pixel")
    if mode == "const":
        return kappa
    if mode == "guided":
        T_x = x_shape[0]
        lead = (T_x - y.shape[0]) - (T_x - y.shape[0]) // 2
        d = torch.diff(y.to(torch.float64), dim=0).abs().mean(dim=1, keepdim=True)  # (T_y - 1, 1, H, W)
        idx = torch.clamp(torch.arange(T_x - 1) - lead, 0, d.shape[0] - 1)
        eps = float(os.environ.get("SVIMG_GUIDE_EPS", "2")) * sigma_y
        g = d[idx]
        return kappa / torch.sqrt(1 + (g / eps) ** 2)
    if y.shape[0] < 2:
        return 0.0
    import scipy.ndimage
    d = torch.diff(y.to(torch.float64), dim=0)
    energy = (d * d).mean(dim=(0, 1)).cpu().numpy()
    if mode == "global" or tuple(y.shape[-2:]) != tuple(x_shape[-2:]):
        energy = np.full(energy.shape, energy.mean()) if mode == "global" else None
    if energy is None:
        return float(sigma_y**2 / (kappa * max(float((d * d).mean()) - 2 * sigma_y**2, 0.1 * sigma_y**2)))
    energy = scipy.ndimage.gaussian_filter(energy, float(os.environ.get("SVIMG_SMOOTH_SIGMA", "2")), mode="nearest")
    excess = np.maximum(energy - 2 * sigma_y**2, 0.1 * sigma_y**2)
    lam = sigma_y**2 / (kappa * excess)
    return torch.as_tensor(lam, dtype=y.dtype, device=y.device)[None, None]


class DataStep:
    """The sampler's ``data_fn(x0, t)``: the data step at timestep t (module docstring).

    The weight is ``gamma`` when given, ``w_t`` (:func:`~svimg.sampling.noise_level.map_weight`)
    when ``sigma_y`` is, else none (noise-free, with the exact last step).  After the
    last step (t = the schedule's last timestep), ``final_residual`` holds its
    ||r|| / ||r_0|| and ``final_method`` how the exact step was solved ("eigenbasis",
    "eigenbasis + cg" or the solver's name).
    """

    def __init__(self, op, y: torch.Tensor, schedule, *, n_iter: int, gamma: float | None = None,
                 sigma_y: float | None = None, solver: str = "cg", final_iters: int = DEFAULT_FINAL_CG_ITERS,
                 dtype: torch.dtype | None = None, tol: float = 1e-5, smooth: float = 0.0,
                 spread: float | None = None):
        self.op, self.schedule, self.n_iter, self.solver, self.tol = op, schedule, n_iter, solver, tol
        self.y = y if dtype is None else y.to(dtype)
        self.smooth = smooth if not sigma_y or not smooth else motion_adaptive_smoothness(self.y, sigma_y, smooth, op.input_shape(tuple(y.shape)))
        self.gamma, self.sigma_y, self.final_iters = gamma, sigma_y, final_iters
        self.v = spread  # the prior's spread: noise_level.PRIOR_SPREAD when None
        self.final_residual: float | None = None
        self.final_method: str | None = None
        self._aty: torch.Tensor | None = None

    @property
    def aty(self) -> torch.Tensor:
        """A^T y, computed on the first step and reused by every later one."""
        if self._aty is None:
            self._aty = self.op.adjoint(self.y)
        return self._aty

    def weight(self, t: int) -> float | None:
        """gamma, or w_t = s_t^2 / sigma_y^2 from the schedule's a_t, or None (noise-free)."""
        if self.sigma_y is None:
            return self.gamma
        return map_weight(self.schedule.alpha_bar(t), self.sigma_y, self.v)

    def __call__(self, x0: torch.Tensor, t: int) -> torch.Tensor:
        if self.n_iter == 0:
            return x0.clone()
        gamma, last = self.weight(t), t == self.schedule.timesteps[-1]
        start = x0.to(self.y.dtype)
        if last and gamma is None:
            return self._exact(start).to(x0.dtype)
        smooth = self.smooth if gamma is not None else 0.0
        x, history = _solve(self.op, self.y, start, self.n_iter, gamma, self.solver, self.tol, aty=self.aty,
                            smooth=smooth)
        if last:
            self.final_residual, self.final_method = _relative(history), self.solver
        return x.to(x0.dtype)

    def _exact(self, x0: torch.Tensor) -> torch.Tensor:
        """The exact noise-free last step: the eigenbasis solve where A allows it, CG for what remains
        (steepest descent alone with ``solver="gd"``, the ablation of the weaker solver)."""
        direct = eigenbasis_solve(self.op, self.y, x0, FINAL_RTOL, self.aty) if self.solver == "cg" else None
        if direct is not None:
            x, self.final_residual = direct
            self.final_method = "eigenbasis"
            if self.final_residual < FINAL_RTOL:
                return x
        start = x0 if direct is None else x
        x, history = _solve(self.op, self.y, start, self.final_iters, None, self.solver, 0.0, FINAL_RTOL, self.aty)
        if direct is None:
            self.final_residual, self.final_method = _relative(history), self.solver
        else:  # CG's residuals are relative to its own start; rescale to x0's
            self.final_residual *= _relative(history)
            self.final_method = f"eigenbasis + {self.solver}"
        return x


def _relative(history: list[float]) -> float:
    return history[-1] / history[0] if history[0] > 0 else 0.0
