"""The sampler: batch-consistent decomposed diffusion sampling (DDS) for video inverse problems.

``sample(y, op, prior)`` runs Algorithm 1 of the paper (:mod:`svimg.sampling.dds`);
:class:`DDSSchedule` is the timestep schedule, kept apart from the loop;
:mod:`~svimg.sampling.noise` holds the noise modes and
:mod:`~svimg.sampling.prior_eval` evaluates an image prior on a video in chunks.
"""

from .dds import dds_step, run_dds, sample, tweedie
from .data_step import SOLVERS, data_step, steepest_descent
from .noise import NOISE_MODES, NoiseSource
from .prior_eval import PriorEvaluator
from .schedule import DDSSchedule

__all__ = [
    "sample",
    "DDSSchedule",
    "dds_step",
    "run_dds",
    "tweedie",
    "data_step",
    "steepest_descent",
    "PriorEvaluator",
    "NoiseSource",
    "NOISE_MODES",
    "SOLVERS",
]
