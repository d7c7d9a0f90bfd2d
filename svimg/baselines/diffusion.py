"""The paper's diffusion baselines, both with the same 2-D image prior applied per frame.

``dps``             diffusion posterior sampling (Chung et al. 2023): an ancestral
                    step, then a step of size ``step_size`` down the gradient of
                    ||y - A x0(x_t)|| taken through the prior by autograd.
``diffusion_mbir``  DiffusionMBIR (Chung et al. 2023b) with TV along t instead of
                    z, in the DDS-like form of :func:`svimg.sample`: the data step
                    of each step is one ADMM-TV iteration (TV along t) from the
                    Tweedie estimate, with z and u carried across steps.

Both take ``(y, op, prior, ...)`` like :func:`svimg.sample`, use its schedule
(:class:`~svimg.sampling.DDSSchedule`), noise modes and seeding, and default to
per-frame ("independent") noise as the original methods.
"""

from __future__ import annotations

import math

import torch

from .._provenance import provenance
from .._validate import check_positive_int, check_positive_number, check_unit_interval
from ..sampling._common import prepare_run, progress_bar
from ..sampling.dds import run_dds, tweedie
from ..solvers.admm_tv import admm_tv as _admm_tv_solver

__all__ = ["dps", "diffusion_mbir"]

Tensor = torch.Tensor


def _ancestral_coefficients(a_t: float, a_next: float) -> tuple[float, float, float]:
    """DDPM posterior q(x_next | x_t, x0) over a skipped step: (coef_x0, coef_xt, std).

    With alpha = a_t / a_next and beta = 1 - alpha (the respaced step)::

        mean = sqrt(a_next) beta / (1 - a_t) x0 + sqrt(alpha) (1 - a_next) / (1 - a_t) x_t
        var  = beta (1 - a_next) / (1 - a_t)          (0 on the last step, a_next = 1)
    """
    alpha = a_t / a_next
    beta = 1 - alpha
    return (math.sqrt(a_next) * beta / (1 - a_t), math.sqrt(alpha) * (1 - a_next) / (1 - a_t),
            math.sqrt(beta * (1 - a_next) / (1 - a_t)))


def _check_differentiable(eps: Tensor) -> None:
    if not eps.requires_grad:
        raise RuntimeError(
            "dps needs a prior whose eps is differentiable by autograd; prior.eps returned a detached tensor"
        )


def _dps_gradient(x: Tensor, t: int, a_t: float, evaluator, residual_norm) -> tuple[Tensor, Tensor, Tensor]:
    """(eps, x0, d residual_norm(x0(x)) / dx), back-propagating through the prior chunk by chunk.

    x0 is the Tweedie estimate clipped to [-1, 1] (as DPS's code, clip_denoised=True).

    With one chunk the graph is built once.  With several, x0 of every frame
    is computed first without a graph, the gradient g0 = d norm / d x0 over the
    whole video (the operator couples frames), then each chunk's prior is run
    again with a graph for the vector-Jacobian product J_chunk^T g0[chunk]:
    peak memory stays that of one chunk, at twice the prior evaluations.
    """
    chunks = evaluator.chunks(x.shape[0])
    with torch.enable_grad():
        if len(chunks) == 1:
            xg = x.detach().requires_grad_()
            eps = evaluator(xg, t)
            _check_differentiable(eps)
            x0 = tweedie(xg, eps, a_t).clamp(-1, 1)
            (grad,) = torch.autograd.grad(residual_norm(x0), xg)
            return eps.detach(), x0.detach(), grad
        with torch.no_grad():
            eps = evaluator(x, t)
            x0 = tweedie(x, eps, a_t).clamp(-1, 1)
        x0g = x0.requires_grad_()
        (g0,) = torch.autograd.grad(residual_norm(x0g), x0g)
        grads = []
        for s in chunks:
            xc = x[s].detach().requires_grad_()
            eps_c = evaluator(xc, t)
            _check_differentiable(eps_c)
            x0c = tweedie(xc, eps_c, a_t).clamp(-1, 1)
            grads.append(torch.autograd.grad(x0c, xc, grad_outputs=g0[s])[0])
        return eps, x0.detach(), torch.cat(grads)


def dps(y, op, prior=None, *, nfe: int = 1000, step_size: float = 30.0, noise: str = "independent",
        seed: int | None = None, generator: torch.Generator | None = None, x_T=None, batch_size: int | None = None,
        device=None, progress: bool = True, callback=None, channel_axis: int | None = None):
    """Diffusion posterior sampling with a 2-D image prior per frame (the paper's DPS baseline).

    For each (t, t_next) of the schedule, x in [-1, 1] units::

        x0     = clip(tweedie(x, prior(x, t)), -1, 1)
        x'     = mean(x0, x) + std * z                      # DDPM ancestral step, fixed posterior variance
        x_next = x' - step_size * grad_x || y' - A x0 ||    # y' = 2 y - A 1, i.e. the norm is 2 ||y - A (x0 + 1) / 2||

    The norm is taken over the whole video (the operator couples frames);
    the prior runs on at most ``batch_size`` frames at a time (see
    :func:`_dps_gradient`).  Paper defaults: 1000 steps, step size 30.  The
    result is the last x mapped to [0, 1] and clamped.  Other arguments as
    :func:`svimg.sample`; ``callback(step, t, x0)`` sees the Tweedie estimate in [0, 1] units.
    """
    step_size = check_positive_number(step_size, "step_size", allow_zero=True)
    run = prepare_run(y, op, prior, nfe=nfe, noise=noise, seed=seed, generator=generator, x_T=x_T,
                      batch_size=batch_size, device=device, progress=progress, callback=callback,
                      channel_axis=channel_axis)
    y_t, schedule = run.problem.y, run.schedule

    def residual_norm(x0):
        return 2 * torch.linalg.vector_norm(y_t - op.forward((x0 + 1) / 2))

    x = run.x_T
    with torch.no_grad(), progress_bar(progress, len(schedule), "svimg.baselines.dps") as bar:
        for step, (t, t_next) in enumerate(schedule.pairs()):
            a_t, a_next = schedule.alpha_bar(t), schedule.alpha_bar(t_next)
            _, x0, grad = _dps_gradient(x, t, a_t, run.evaluator, residual_norm)
            coef_x0, coef_xt, std = _ancestral_coefficients(a_t, a_next)
            x_prev = coef_x0 * x0 + coef_xt * x
            if t_next >= 0:
                x_prev = x_prev + std * run.noise.step()
            x = x_prev - step_size * grad
            bar.update(1)
            if callback is not None:
                callback(step, t, (x0 + 1) / 2)
    attrs = provenance("baselines.dps", op, step_size=step_size, **run.provenance_params())
    return run.problem.vol.wrap(run.problem.aligned(((x + 1) / 2).clamp(0, 1)), attrs)


def diffusion_mbir(y, op, prior=None, *, nfe: int = 1000, eta: float = 0.15, rho: float = 0.1, lam: float = 1e-3,
                   admm_iters: int = 1, cg_iters: int = 5, noise: str = "independent", seed: int | None = None,
                   generator: torch.Generator | None = None, x_T=None, batch_size: int | None = None, device=None,
                   progress: bool = True, callback=None, channel_axis: int | None = None):
    """DiffusionMBIR with TV along t, in DDS form (the paper's DiffusionMBIR baseline).

    The loop of :func:`svimg.sample` (Tweedie, data step, re-noise with ``eta``)
    where the data step is ``admm_iters`` ADMM iterations on
    ``1/2 ||A x - y||^2 + lam ||D_t x||_1`` (:func:`svimg.solvers.admm_tv`,
    ``cg_iters`` CG steps per x-update) started from the Tweedie estimate,
    the split variables z, u kept from step to step as in DiffusionMBIR.
    Paper: 1000 NFE; (rho, lam) = (0.1, 0.001) for temporal and (0.01, 0.01)
    for spatio-temporal degradations.  Other arguments as :func:`svimg.sample`.
    """
    eta = check_unit_interval(eta, "eta")
    rho = check_positive_number(rho, "rho")
    lam = check_positive_number(lam, "lam", allow_zero=True)
    admm_iters = check_positive_int(admm_iters, "admm_iters")
    cg_iters = check_positive_int(cg_iters, "cg_iters", minimum=0)
    run = prepare_run(y, op, prior, nfe=nfe, noise=noise, seed=seed, generator=generator, x_T=x_T,
                      batch_size=batch_size, device=device, progress=progress, callback=callback,
                      channel_axis=channel_axis)
    y_t = run.problem.y
    split = None

    def data_fn(x0, t):
        nonlocal split
        x, split = _admm_tv_solver(op, y_t, x0, lam=lam, rho=rho, n_iter=admm_iters, cg_iters=cg_iters, dims=(0,),
                                   split=split)
        return x

    with torch.no_grad():
        x = run_dds(run.take_x_T(), eps_fn=run.evaluator, data_fn=data_fn, schedule=run.schedule, eta=eta, noise=run.noise,
                    progress=progress, callback=callback, desc="svimg.baselines.diffusion_mbir")
    attrs = provenance("baselines.diffusion_mbir", op, eta=eta, rho=rho, lam=lam, admm_iters=admm_iters,
                       cg_iters=cg_iters, **run.provenance_params())
    return run.problem.vol.wrap(run.problem.aligned(x), attrs)
