"""Batch-consistent decomposed diffusion sampling (the paper's Algorithm 1).

For the schedule's pairs (t, t_next) (:class:`~svimg.sampling.schedule.DDSSchedule`),
with the video x (T, C, H, W) in the prior's [-1, 1] units and the frames as
the image prior's batch::

    eps    = prior(x, t)                                        # one image per frame
    x0     = (x - sqrt(1 - a_t) eps) / sqrt(a_t)                # Tweedie, no clipping
    x0_hat = 2 * D_t((x0 + 1) / 2) - 1                          # data step over the WHOLE video, [0, 1] units
    x      = sqrt(a_next) x0_hat + c1 z + c2 eps                # c1 = sqrt(1 - a_next) eta
                                                                # c2 = sqrt(1 - a_next) sqrt(1 - eta^2)

where z is one (1, C, H, W) draw repeated over frames ("batch" noise) and D_t
the data step (:class:`~svimg.sampling.data_step.DataStep`: k CG iterations,
weighted by the schedule when the noise level is known, exact at the end
when there is no noise).  The
step into t = 0 does not re-noise (x = x0_hat); the last step (0 -> -1) runs
the prior on that estimate once more and does the data step: ``nfe`` prior
evaluations in all.  The result is the last data step's output clamped to [0, 1].
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .._provenance import provenance
from .._validate import check_gamma, check_positive_int, check_positive_number, check_unit_interval
from ._common import check_choice, check_flag, prepare_run, progress_bar
from .data_step import DEFAULT_CG_RTOL, DEFAULT_FINAL_CG_ITERS, DEFAULT_SMOOTH_T, SOLVERS, DataStep
from .noise_level import AUTO, check_noise_std, noise_floor, resolve_noise_std
from .noise import NoiseSource
from .schedule import DDSSchedule

__all__ = ["sample", "dds_step", "run_dds", "tweedie", "DEFAULT_NFE", "DEFAULT_ETA", "DEFAULT_CG_ITERS"]

DEFAULT_NFE = 20
DEFAULT_ETA = 0.15
DEFAULT_CG_ITERS = 5

Tensor = torch.Tensor


def tweedie(x_t: Tensor, eps: Tensor, a_t: float, *, overwrite: bool = False) -> Tensor:
    """x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), the denoised estimate (no clipping).

    ``overwrite=True`` computes it in ``x_t``'s memory (same rounding).
    """
    if overwrite:
        return x_t.sub_(math.sqrt(1 - a_t) * eps).div_(math.sqrt(a_t))
    return (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)


def dds_step(x: Tensor, t: int, t_next: int, *, eps_fn: Callable[[Tensor, int], Tensor],
             data_fn: Callable[[Tensor], Tensor], schedule: DDSSchedule, eta: float,
             z: Tensor | None, overwrite: bool = False) -> tuple[Tensor, Tensor]:
    """One step of Algorithm 1 (module docstring).  Returns (x_next, x0_hat in [0, 1] units).

    ``data_fn(x0, t)`` maps the Tweedie estimate in [0, 1] units to its data-consistent
    update; ``z`` is the re-noising draw, unused (and may be None) when t_next <= 0.
    ``overwrite=True`` lets the step use ``x``'s memory for x0 (one video fewer
    alive during the data step; same rounding).
    """
    eps = eps_fn(x, t)
    x0 = tweedie(x, eps, schedule.alpha_bar(t), overwrite=overwrite)
    x0_hat01 = data_fn(x0.add_(1).div_(2) if overwrite else (x0 + 1) / 2, t)
    del x0
    x0_hat = x0_hat01.mul(2).sub_(1)
    if t_next <= 0:
        return x0_hat, x0_hat01
    sqrt_a_next, c1, c2 = schedule.renoise_coefficients(t_next, eta)
    return x0_hat.mul_(sqrt_a_next).add_(c1 * z).add_(eps.mul_(c2)), x0_hat01


def run_dds(x_T: Tensor, *, eps_fn, data_fn, schedule: DDSSchedule, eta: float, noise: NoiseSource,
            progress: bool = False, callback=None, desc: str = "svimg.sample") -> Tensor:
    """The sampling loop from x_T; returns the last x0_hat in [0, 1] units, clamped to [0, 1].

    ``x_T`` is overwritten (the loop works in its memory).  Alive at once during
    a step: x (reused for x0), eps, the data step's vectors and y; see
    :data:`svimg.sampling.budget.SAMPLER_VOLUMES`.
    ``callback(step, t, x0_hat)`` (x0_hat in [0, 1] units, a tensor of its own)
    runs after every step; an exception it raises ends the loop and propagates.
    """
    x, x0_hat01 = x_T, None
    with progress_bar(progress, len(schedule), desc) as bar:
        for step, (t, t_next) in enumerate(schedule.pairs()):
            z = noise.step() if t_next > 0 else None
            x0_hat01 = None  # the previous estimate is not kept through the next step
            x, x0_hat01 = dds_step(x, t, t_next, eps_fn=eps_fn, data_fn=data_fn, schedule=schedule, eta=eta, z=z,
                                   overwrite=True)
            bar.update(1)
            if callback is not None:
                callback(step, t, x0_hat01.clone())
    return x0_hat01.clamp_(0, 1)


def sample(y, op, prior=None, *, nfe: int = DEFAULT_NFE, eta: float = DEFAULT_ETA, cg_iters: int = DEFAULT_CG_ITERS,
           cg_rtol: float | None = DEFAULT_CG_RTOL, gamma: float | None = None, noise_std=AUTO,
           smooth_t: float = DEFAULT_SMOOTH_T, noise: str = "batch",
           solver: str = "cg", final_cg_iters: int = DEFAULT_FINAL_CG_ITERS, keep_margins: bool = False,
           seed: int | None = None, generator: torch.Generator | None = None, x_T=None,
           batch_size: int | None = None, device=None, progress: bool = True, callback=None,
           channel_axis: int | None = None):
    """Restore a video from ``y = A x`` with an image diffusion prior (batch-consistent DDS).

    Parameters
    ----------
    y : array, tensor or DataArray
        The measurement, (T, C, H, W) or (T, H, W), values in [0, 1].
    op : svimg.ops.LinearOperator
        The degradation A.  The sampler restores its whole input, shape ``op.input_shape(y.shape)``;
        with a "valid" temporal PSF (the default boundary) that is ``op.margins`` frames longer than y
        at either end, and the result returned is the frames aligned with y's (``keep_margins``).
    prior : prior object, spec string or None
        None loads :func:`svimg.priors.bundled`; a string goes to :func:`svimg.priors.load`.
        Single-channel data runs through a multi-channel prior by replicating
        each frame over the prior's channels and averaging its noise
        prediction back (see :mod:`svimg.sampling.prior_eval`).
    nfe : int
        Prior evaluations, 1..1000 (:class:`DDSSchedule`).
    eta : float
        Share of fresh noise when re-noising, in [0, 1].
    cg_iters : int
        Data-step iterations per step (0 gives the prior's unconditional sample).
    cg_rtol : float in [0, 1] or None
        The steps weighted by ``noise_std`` (MAP problems) iterate instead until
        ||r|| <= cg_rtol ||r_0||, at most :data:`~svimg.sampling.data_step.MAP_MAX_ITERS`
        (:class:`~svimg.sampling.data_step.DataStep`); None or 0 runs ``cg_iters`` there too.
    gamma : float or None
        The paper's fixed weight for noisy data: (I + gamma A^T A) x = x0 + gamma A^T y.
        Not together with ``noise_std``.
    noise_std : "auto" (default), float >= 0 or None
        The measurement's Gaussian noise standard deviation sigma_y in [0, 1] units;
        "auto" estimates it from y (:func:`~svimg.sampling.noise_level.estimate_noise_std`; an
        estimate at or below 8-bit rounding, :data:`~svimg.sampling.noise_level.QUANTIZATION_STD`,
        counts as noise-free).
        Given, each data step solves the step's MAP problem
        (I + w_t A^T A) x = x0 + w_t A^T y with w_t = s_t^2 / sigma_y^2 and s_t^2
        the Tweedie estimate's error at step t (:mod:`svimg.sampling.noise_level`).
        None (or 0) with no ``gamma``: noise-free, A^T A x = A^T y, and the last
        data step is exact, ||r|| / ||r_0|| < 1e-6: one direct solve in the eigenbasis of
        A^T A when A is separable (temporal PSFs, blur, downsampling and their products;
        :mod:`svimg.solvers.eigenbasis`), else CG until the tolerance.
    smooth_t : float >= 0
        The temporal term of every data step weighted by ``noise_std``,
        (I + w_t (A^T A + D_t^T diag(lam_i) D_t)) x = x0 + w_t A^T y, D_t the frame-to-frame
        difference and lam_i = lam / sqrt(1 + (g_i / eps)^2) (eps = EDGE_NOISE_RATIO sigma_y) reweighted by
        the step's estimate's own changes g_i = |x0[i + 1] - x0[i]|
        (:func:`~svimg.sampling.data_step.temporal_weights`), lam = smooth_t /
        (2 sin(pi / s))^2 for a temporal support of s frames (:func:`~svimg.sampling.data_step.smooth_lambda`):
        it removes what a per-frame image prior cannot see (flicker, the null space of a
        "valid" temporal PSF) and leaves motion alone.  0 turns it off; noise-free and
        fixed-``gamma`` steps do not use it.
    noise : {"batch", "initial", "independent"}
        Which draws are shared over frames (:mod:`svimg.sampling.noise`); "batch" is the method.
    solver : {"cg", "gd"}
        Conjugate gradients, or steepest descent with exact line search (ablation).
    final_cg_iters : int
        Most CG iterations of the noise-free exact last data step (where it is not, or not
        entirely, solved directly).
    keep_margins : bool
        Return the whole restored input, the ``op.margins`` frames past either end of y included.
    seed, generator
        The only sources of randomness (at most one).  With neither a seed is
        drawn from the OS and recorded in the provenance.
    x_T : array or tensor, optional
        The initial noise, (1, C, H, W) (repeated over frames) or (T, C, H, W),
        in place of the seed's first draw; the per-step draws stay those of the seed.
    batch_size : int or None
        Most frames per prior call; None chooses as many as fit in the free memory from the prior's
        measured cost per frame (:mod:`svimg.sampling.memory`; ``MemoryError`` when not even the
        video's volumes fit).  The result equals a single batch up to float rounding.
    device : "auto", None, "cpu", "cuda", "cuda:N"
    progress : bool
        Show a tqdm bar, one tick per prior evaluation.
    callback : callable(step, t, x0_hat) or None
        Called after every step with the current estimate in [0, 1] units;
        raise from it to cancel (the exception propagates, nothing is returned).
    channel_axis : int or None
        Where a 4-D array ``y`` keeps its channels (-1 for (T, H, W, C)); the result has them there too
        (:mod:`svimg._convert`).

    Returns
    -------
    The restoration in [0, 1], same type as ``y`` (xarray gains provenance attrs
    recording every parameter, the noise level used and whether it was
    estimated, the last data step's relative residual and how it was solved, the seed and the prior's
    name and sha256).  Data steps run in float64 on the CPU (in y's dtype, with float64 inner
    products, when the float64 working set would take more than a quarter of the free memory:
    :func:`svimg.sampling.budget.working_set`), in y's dtype on CUDA.
    """
    eta = check_unit_interval(eta, "eta")
    cg_iters = check_positive_int(cg_iters, "cg_iters", minimum=0)
    cg_rtol = None if cg_rtol is None else check_unit_interval(cg_rtol, "cg_rtol")
    gamma = check_gamma(gamma)
    noise_std = check_noise_std(noise_std, gamma)
    check_choice(solver, "solver", SOLVERS)
    final_cg_iters = check_positive_int(final_cg_iters, "final_cg_iters", minimum=0)
    smooth_t = check_positive_number(smooth_t, "smooth_t", allow_zero=True)
    check_flag(keep_margins, "keep_margins")
    run = prepare_run(y, op, prior, nfe=nfe, noise=noise, seed=seed, generator=generator, x_T=x_T,
                      batch_size=batch_size, device=device, progress=progress, callback=callback,
                      weighted=gamma is not None or noise_std is not None, channel_axis=channel_axis)
    sigma_y, estimated = resolve_noise_std(noise_std, run.problem.y, blind_along_t=any(op.margins),
                                           floor=noise_floor(run.problem.vol.attrs))
    dtype = run.data_dtype
    data_fn = DataStep(op, run.problem.y, run.schedule, n_iter=cg_iters, gamma=gamma, sigma_y=sigma_y,
                       solver=solver, final_iters=final_cg_iters, dtype=dtype, smooth=smooth_t,
                       spread=getattr(run.prior, "spread", None),  # a closed-form prior knows its variance
                       rtol=cg_rtol)

    with torch.no_grad():
        x = run_dds(run.take_x_T(), eps_fn=run.evaluator, data_fn=data_fn, schedule=run.schedule, eta=eta,
                    noise=run.noise, progress=progress, callback=callback)
    if not keep_margins:
        x = run.problem.aligned(x)
    attrs = provenance("sample", op, eta=eta, cg_iters=cg_iters, cg_rtol=cg_rtol, gamma=gamma, noise_std=sigma_y,
                       noise_std_estimated=estimated, smooth_t=smooth_t, margins=list(op.margins),
                       margins_kept=keep_margins, solver=solver, final_cg_iters=final_cg_iters,
                       final_relative_residual=data_fn.final_residual, final_step=data_fn.final_method,
                       data_dtype=str(dtype).replace("torch.", ""),
                       **run.provenance_params())
    return run.problem.vol.wrap(x, attrs)
