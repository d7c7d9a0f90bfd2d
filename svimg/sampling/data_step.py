"""The data-consistency step of one sampling step, in [0, 1] units, over the whole video.

This module owns every term of the data step and its weight.  Starting from the
denoised estimate x0, a few iterations on the normal system
(:func:`svimg.solvers.normal_system`)::

    A^T A x = A^T y                                       (noise-free)
    (I + gamma A^T A) x = x0 + gamma A^T y                (the paper's fixed gamma)
    (I + w_t (A^T A + D_t^T diag(lam_i) D_t)) x           (noise level sigma_y known or estimated:
        = x0 + w_t A^T y                                   w_t = s_t^2 / sigma_y^2, see noise_level)

The last line is the MAP problem of the step with a model of the frame-to-frame differences
D_t x (:func:`temporal_weights`): a per-frame image prior cannot see patterns along time
(flicker; with a "valid" temporal PSF, ``support - 1`` sequences per pixel that no measurement
constrains), and this term removes them where the video stands still while leaving motion
alone.  Its weights come from the step's own estimate x0 (one reweighting per step of a
Charbonnier penalty along t).  lam follows from ``smooth_t`` (:data:`DEFAULT_SMOOTH_T`) and the
temporal support (:func:`smooth_lambda`).

Noise-free, the LAST data step is exact: ||r|| / ||r_0|| < 1e-6.  When A is
separable (one matrix per axis: temporal PSFs, the blur, downsampling and their
products) and the solver is CG, it is one direct solve in the eigenbasis of A^T A
(:func:`svimg.solvers.eigenbasis.eigenbasis_solve`); otherwise, or to polish that
solve, CG runs until the tolerance (at most ``final_iters`` iterations).  Either
way the result fits the data while keeping the prior's content where A is
(nearly) blind.  The sampler picks the data step's dtype
(:func:`svimg.sampling.budget.working_set`): float64 on the CPU where it fits
(the prior network stays float32), else the input's dtype, as on CUDA
(float64 inner products in either case).

with conjugate gradients (``"cg"``, the method) or steepest descent with an
exact line search (``"gd"``, the paper's ablation).  Inner products run over
all frames at once: the temporal PSF couples them.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..solvers.cg import _dot, conjugate_gradient, normal_system
from ..solvers.eigenbasis import eigenbasis_solve
from .noise_level import map_weight

__all__ = ["SOLVERS", "FINAL_RTOL", "DEFAULT_FINAL_CG_ITERS", "DEFAULT_SMOOTH_T", "DEFAULT_CG_RTOL", "MAP_MAX_ITERS",
           "EDGE_NOISE_RATIO", "DataStep",
           "data_step", "smooth_lambda", "steepest_descent", "temporal_weights"]

SOLVERS = ("cg", "gd")
DEFAULT_SMOOTH_T = 0.225  # smooth_lambda's penalty (lam 0.30 at 7 frames); chosen on development clips, benchmarks/README.md
EDGE_NOISE_RATIO = 1.0  # eps / sigma_y of temporal_weights; chosen on development clips (benchmarks/README.md)
FINAL_RTOL = 1e-6
DEFAULT_FINAL_CG_ITERS = 300
DEFAULT_CG_RTOL = 1e-3  # the MAP steps' CG stops at ||r|| <= DEFAULT_CG_RTOL ||r_0|| (benchmarks/README.md)
MAP_MAX_ITERS = 50


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


def smooth_lambda(smooth_t: float, support: int) -> float:
    """lam = smooth_t / (2 sin(pi / s))^2 for a temporal support of s frames (s >= 2).

    (2 sin(pi / s))^2 is ||D_t p||^2 / ||p||^2 for the slowest pattern of period s, the slowest
    one a "valid" box exposure of s frames cannot see: ``smooth_t`` is the penalty on it, the same
    for every exposure (lam 0.30 at 7 frames, 0.98 at 13 for the default).  An operator that sees
    every pattern (another boundary, or no temporal PSF) counts as s = 2: lam = smooth_t / 4.
    """
    return smooth_t / (2 * math.sin(math.pi / max(support, 2))) ** 2


def temporal_weights(x: torch.Tensor, sigma_y: float, lam: float) -> torch.Tensor:
    """The temporal term's weight of every frame-to-frame difference of the estimate x (T, C, H, W)::

        lam_i = lam / sqrt(1 + (g_i / eps)^2),    g_i = |x[i + 1] - x[i]| (mean over channels),
        eps = EDGE_NOISE_RATIO * sigma_y

    the iteratively reweighted form of the Charbonnier penalty along t,
    lam eps^2 sum_i (sqrt(1 + (D_t x)_i^2 / eps^2) - 1), linearised at x: where x stands still
    the smoothing is lam (quadratic), where it changes by more than the noise the weight falls
    like lam eps / |g| (total variation along t), so that motion is spared.  The data step takes x
    as its x0, the prior's estimate at that step: it knows where things move far better than the
    measurement, whose frames an exposure spreads over ``support`` frames.
    Returns a (T - 1, 1, H, W) tensor.
    """
    g = torch.zeros((x.shape[0] - 1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
    for c in range(x.shape[1]):  # channel by channel: no temporary of the whole video
        g += (x[1:, c:c + 1] - x[:-1, c:c + 1]).abs_()
    eps = EDGE_NOISE_RATIO * sigma_y * x.shape[1]  # g holds the sum over channels
    return (g.div_(eps).square_().add_(1).sqrt_()).reciprocal_().mul_(lam)


class DataStep:
    """The sampler's ``data_fn(x0, t)``: the data step at timestep t (module docstring).

    The weight is ``gamma`` when given, ``w_t`` (:func:`~svimg.sampling.noise_level.map_weight`)
    when ``sigma_y`` is, else none (noise-free, with the exact last step).  Each step runs ``n_iter``
    iterations, except the MAP steps (``sigma_y`` given) with ``rtol``: those solve their problem,
    iterating until ||r|| <= rtol ||r_0|| (at most :data:`MAP_MAX_ITERS`).  A MAP step is a proper
    posterior problem whose solution is the step's intended estimate, and a long exposure makes it
    ill-conditioned: five iterations left a 13-frame box at ||r|| / ||r_0|| of 0.03 to 0.06 (1e-3 took
    12 to 16 iterations a step; a 7-frame box 6 to 9).  The other steps keep the paper's fixed count:
    there, stopping early is part of the method (it keeps x near the prior's estimate where A is
    nearly blind).  After the last step (t = the schedule's last timestep), ``final_residual`` holds
    its ||r|| / ||r_0|| and ``final_method`` how the exact step was solved ("eigenbasis",
    "eigenbasis + cg" or the solver's name).
    """

    def __init__(self, op, y: torch.Tensor, schedule, *, n_iter: int, gamma: float | None = None,
                 sigma_y: float | None = None, solver: str = "cg", final_iters: int = DEFAULT_FINAL_CG_ITERS,
                 dtype: torch.dtype | None = None, tol: float = 1e-5, smooth: float = 0.0,
                 spread: float | None = None, rtol: float | None = DEFAULT_CG_RTOL):
        self.op, self.schedule, self.n_iter, self.solver, self.tol = op, schedule, n_iter, solver, tol
        self.rtol = rtol
        self.y = y if dtype is None else y.to(dtype)
        unseen = op.support_t if any(op.margins) else 1  # only a "valid" PSF leaves patterns unseen
        self.lam = smooth_lambda(smooth, unseen) if sigma_y and smooth else 0.0  # the temporal term's lam
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
        smooth = temporal_weights(start, self.sigma_y, self.lam) if self.lam and start.shape[0] > 1 else 0.0
        n_iter, rtol = (MAP_MAX_ITERS, self.rtol) if self.rtol and self.sigma_y else (self.n_iter, 0.0)
        x, history = _solve(self.op, self.y, start, n_iter, gamma, self.solver, self.tol, rtol, aty=self.aty,
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
