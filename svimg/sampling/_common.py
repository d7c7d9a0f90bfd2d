"""Argument handling shared by :func:`svimg.sample` and the diffusion baselines.

Each check raises one clear exception naming the parameter and its value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .._api import _check_op, check_measurement
from .._convert import Volume, to_volume
from .._device import resolve_device
from .._validate import check_callback, check_data_range, check_finite, check_positive_int
from .budget import AutoBatch, working_set
from .noise import NOISE_MODES, NoiseSource, make_generator
from .prior_eval import PriorEvaluator, prior_identity
from .schedule import DDSSchedule

__all__ = [
    "Problem",
    "prepare_problem",
    "resolve_prior",
    "check_choice",
    "check_flag",
    "initial_noise",
    "progress_bar",
    "Run",
    "prepare_run",
]


def resolve_prior(prior, device: torch.device):
    """None -> the bundled prior; a string or path -> ``svimg.priors.load(spec)``; a prior object as given.

    A prior with a ``to`` method (a torch module) is moved to ``device``.
    """
    if prior is None or isinstance(prior, (str, os.PathLike)):
        from .. import priors  # imported lazily: loading the bundled weights is not free

        prior = priors.bundled() if prior is None else priors.load(prior)
    mover = getattr(prior, "to", None)
    if callable(mover):
        moved = mover(device)
        prior = prior if moved is None else moved
    return prior


def check_choice(value, name: str, choices: tuple) -> str:
    """``value`` if it is one of ``choices``, else ValueError."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


@dataclass
class Problem:
    """A measurement ready for a solver: y on the working device and dtype, and the input shape of ``op``."""

    vol: Volume
    y: torch.Tensor
    op: object
    x_shape: tuple
    device: torch.device

    @property
    def dtype(self) -> torch.dtype:
        return self.y.dtype

    def aligned(self, x: torch.Tensor) -> torch.Tensor:
        """The frames of a restored input x that line up with y's: all but ``op.margins`` at either end."""
        lead, trail = self.op.margins
        return x[lead:x.shape[0] - trail]


def prepare_problem(y, op, device, channel_axis=None) -> Problem:
    """Validate ``op`` and ``y`` (finite, shape an output of op, in range) and move y to ``device``.

    The working dtype is float64 for float64 input, float32 otherwise.  A y far
    outside what ``op`` makes of a [0, 1] video (below ``-g``, above ``2 g``,
    ``g = max(1, max |A 1|)``) raises: it is a units mistake such as 0..255 data.
    """
    _check_op(op)
    vol = to_volume(y, "y", with_range=True, channel_axis=channel_axis)
    x_shape = tuple(check_measurement(op, vol.tensor))
    dev = resolve_device(device)
    dtype = torch.float64 if vol.tensor.dtype == torch.float64 else torch.float32
    y_work = vol.tensor.to(device=dev, dtype=dtype)
    with torch.no_grad():
        gain = float(op.forward(torch.ones(x_shape, dtype=dtype, device=dev)).abs().max())
    check_data_range(y_work, "y", gain, vol.value_range)
    return Problem(vol, y_work, op, x_shape, dev)


def initial_noise(x_T, problem: Problem) -> torch.Tensor:
    """A caller's initial noise as a (T, C, H, W) tensor: shape (1 or T, C, H, W), or (1 or T, H, W) for single-channel data."""
    t = x_T.detach() if isinstance(x_T, torch.Tensor) else torch.as_tensor(np.asarray(x_T))
    T, C, H, W = problem.x_shape
    if t.ndim == 3 and C == 1:
        t = t[:, None]
    if t.ndim != 4 or tuple(t.shape[1:]) != (C, H, W) or t.shape[0] not in (1, T):
        raise ValueError(f"x_T must have shape (1, {C}, {H}, {W}) or ({T}, {C}, {H}, {W}), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"x_T must be floating point, got dtype {t.dtype}")
    check_finite(t, "x_T")
    return t.to(device=problem.device, dtype=problem.dtype).expand(T, C, H, W).clone()


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar with one tick per prior evaluation (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="nfe", disable=not enabled, leave=False)


@dataclass
class Run:
    """Everything a diffusion sampler needs besides its own step: problem, prior, schedule, noise, x_T."""

    problem: Problem
    prior: object
    evaluator: object
    schedule: object
    noise: object
    x_T: torch.Tensor
    seed: object
    batch_size: int | None
    x_T_given: bool
    data_dtype: torch.dtype

    def take_x_T(self) -> torch.Tensor:
        """x_T for a loop that overwrites it; the Run lets go of it so its memory is not kept twice."""
        x_T, self.x_T = self.x_T, None
        return x_T

    def provenance_params(self) -> dict:
        """The shared provenance fields: nfe, noise mode, seed, x_T, batch_size, device, prior name and sha256."""
        return {
            "nfe": self.schedule.nfe, "noise": self.noise.mode, "seed": self.seed,
            "x_T": "given" if self.x_T_given else None, "batch_size": self.evaluator.batch_size,
            **({"batch_size_choice": self.evaluator.auto.describe()} if self.evaluator.auto else {}),
            "device": str(self.problem.device), **prior_identity(self.prior),
        }


def prepare_run(y, op, prior, *, nfe, noise, seed, generator, x_T, batch_size, device, progress, callback,
                weighted: bool = False, channel_axis=None) -> Run:
    """Validate the arguments shared by the diffusion samplers and set up a :class:`Run`.

    ``weighted``: the data step is the regularised form (gamma or noise_std), for the memory count;
    ``channel_axis``: y's layout (:mod:`svimg._convert`).
    """
    problem = prepare_problem(y, op, device, channel_axis)
    nfe = check_positive_int(nfe, "nfe")
    check_choice(noise, "noise", NOISE_MODES)
    check_flag(progress, "progress")
    check_callback(callback, "callback(step, t, x0_hat)")
    gen, seed_used = make_generator(seed, generator)
    prior = resolve_prior(prior, problem.device)
    if hasattr(prior, "start_descent"):  # a cached prior's flips "cycle" restarts: a seeded run is reproducible
        prior.start_descent()
    volume = int(np.prod(problem.x_shape)) * problem.y.element_size()
    data_dtype, volumes = working_set(problem.device, problem.dtype, volume, weighted)
    auto = AutoBatch(volumes + 1, problem.device) if batch_size is None else None
    evaluator = PriorEvaluator(prior, problem.x_shape[1], batch_size, auto=auto)
    schedule = DDSSchedule(nfe, prior.betas)
    source = NoiseSource(noise, problem.x_shape, gen, problem.dtype, problem.device)
    start = source.initial()  # drawn even when x_T is given, so the per-step draws do not depend on x_T
    if x_T is not None:
        start = initial_noise(x_T, problem)
    return Run(problem, prior, evaluator, schedule, source, start, seed_used, batch_size, x_T is not None, data_dtype)
