"""The measurement's noise level and the per-step weight of the noisy data step.

With Gaussian measurement noise of standard deviation ``sigma_y`` (in [0, 1]
units), the data step at timestep t is the MAP problem of that step::

    min_x ||A x - y||^2 / sigma_y^2 + ||x - x0||^2 / s_t^2
    <=>  (I + w_t A^T A) x = x0 + w_t A^T y,     w_t = s_t^2 / sigma_y^2

where x0 is the Tweedie estimate and s_t^2 its error variance per pixel.  For
a Gaussian image prior of per-pixel variance v, x_t / sqrt(a_t) = x0 + n with
n of variance sigma_t^2 = (1 - a_t) / a_t in the prior's [-1, 1] units, i.e.
sigma_t^2 / 4 in [0, 1] units, and the posterior variance of x0 is exactly::

    s_t^2 = v tau_t / (v + tau_t),    tau_t = (1 - a_t) / (4 a_t)

the identity denoiser's error tau_t at low noise, the images' own spread v at
high noise.  Only the part of the video that the data step can change matters
(what A blurs away), and v is the prior's spread there: one constant in
[0, 1] units (:data:`PRIOR_SPREAD`), the same for every clip, so that s_t
depends on the schedule alone.  It was tuned once on a development clip that
is not one of the benchmark's report clips and then fixed
(benchmarks/tune_noise_weight.py; result in benchmarks/README.md).

``noise_std="auto"`` estimates sigma_y from y.  Any temporal or spatial blur
acts before the noise, so the noise in y is white in space and in time, and
two robust estimates see it:

- spatial: :func:`skimage.restoration.estimate_sigma` (wavelet median absolute
  deviation) of every frame and channel, their median;
- temporal: the second difference along time d = y[t+1] - 2 y[t] + y[t-1]
  carries noise of variance 6 sigma_y^2 and little of a temporally blurred
  signal: median(|d|) / (0.6745 sqrt(6)) (at least 3 frames).

Signal left in either only inflates it, so the estimate is the smaller of the
two.  (The temporal one keeps small frames, e.g. after 4x pooling, and masked
frames, whose zeros' edges dominate the wavelet estimate, usable.)

A lossy video codec (h264 and the like) removes the fine-scale noise both estimates
read and leaves its own error, blocky and larger: an mp4 of a clip recorded with
sigma 0.01 estimates at 0 to 0.005 while its decoded frames are 0.014 to 0.022 off the
exact measurement.  A video decoded from such a file (``attrs["codec"]``, set by
:func:`svimg.io.load`) therefore gets at least :data:`LOSSY_NOISE_FLOOR`
(:func:`noise_floor`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["AUTO", "QUANTIZATION_STD", "PRIOR_SPREAD", "check_noise_std", "estimate_noise_std", "resolve_noise_std",
           "tweedie_error_var", "map_weight", "LOSSY_NOISE_FLOOR", "LOSSLESS_CODECS", "noise_floor"]

AUTO = "auto"
QUANTIZATION_STD = 1 / (255 * 12**0.5)  # the rounding error of 8-bit data, uniform over one level: 0.00113
LOSSY_NOISE_FLOOR = 0.005  # "auto"'s least sigma_y for a lossy-coded video; development clips, benchmarks/README.md
LOSSLESS_CODECS = frozenset({"rawvideo", "ffv1", "ffvhuff", "huffyuv", "utvideo", "magicyuv", "png", "qtrle",
                             "apng", "gif"})
PRIOR_SPREAD = 1.7e-3  # v above: benchmarks/results/noise_weight_tuning.json (carphone[100:116]; retuned with cg_rtol)


def check_noise_std(noise_std, gamma=None):
    """None, a number in [0, 0.5] or "auto"; with ``gamma`` (the paper's fixed weight) "auto", the
    default, gives way to it (None) and a number is an error (two noise models at once).

    The bound 0.5 is the largest standard deviation any signal in [0, 1] can have (half its values at 0,
    half at 1): noise above it would drown every video, so a larger value is a units mistake (0-255).
    """
    largest = 0.5
    if noise_std is None or (gamma is not None and noise_std == AUTO):
        return None
    if gamma is not None:
        raise ValueError(f"noise_std and gamma are two ways to weight the data step; give one, got "
                         f"noise_std={noise_std!r} and gamma={gamma!r}")
    if isinstance(noise_std, str):
        if noise_std != AUTO:
            raise ValueError(f"noise_std must be None, a number >= 0 or 'auto', got {noise_std!r}")
        return AUTO
    if isinstance(noise_std, bool) or not isinstance(noise_std, numbers.Real) or not math.isfinite(noise_std) \
            or noise_std < 0:
        raise ValueError(f"noise_std must be None, a number >= 0 or 'auto', got {noise_std!r}")
    if noise_std > largest:
        raise ValueError(f"noise_std is in [0, 1] units (a fraction of the full range), got {noise_std!r}: above "
                         f"{largest}, the largest standard deviation a signal in [0, 1] can have; 0-255 units? "
                         f"divide by 255 ({noise_std!r} / 255 = {noise_std / 255:.4g})")
    return float(noise_std)


def estimate_noise_std(y: torch.Tensor) -> float:
    """sigma_y of a (T, C, H, W) y: the smaller of the spatial and the temporal estimate (module docstring)."""
    from skimage.restoration import estimate_sigma

    frames = y.detach().to("cpu", torch.float64).numpy()
    spatial = float(np.median([estimate_sigma(plane) for frame in frames for plane in frame]))
    if frames.shape[0] < 3:
        return spatial
    d = frames[2:] - 2 * frames[1:-1] + frames[:-2]
    temporal = float(np.median(np.abs(d))) / (0.6745 * np.sqrt(6))
    return min(spatial, temporal)


def noise_floor(attrs: dict) -> float:
    """The least sigma_y "auto" gives a measurement with these attrs: :data:`LOSSY_NOISE_FLOOR` for frames
    decoded from a lossy codec (``attrs["codec"]`` not in :data:`LOSSLESS_CODECS`), else 0."""
    codec = attrs.get("codec") if attrs else None
    return LOSSY_NOISE_FLOOR if codec and str(codec).lower() not in LOSSLESS_CODECS else 0.0


def resolve_noise_std(noise_std, y: torch.Tensor, blind_along_t: bool = False,
                      floor: float = 0.0) -> tuple[float | None, bool]:
    """(sigma_y or None, estimated?) for a checked ``noise_std``; 0 counts as noise-free (None).

    "auto" estimates sigma_y and raises it to ``floor`` (:func:`noise_floor`).  An estimate at or below
    :data:`QUANTIZATION_STD` (8-bit rounding alone) counts as noise-free, unless the operator is
    ``blind_along_t`` (a "valid" temporal PSF, whose null space along time only the noisy data step's
    temporal term fills): then the rounding is the noise, QUANTIZATION_STD.
    """
    if noise_std == AUTO:
        sigma = max(estimate_noise_std(y), floor)
        if not sigma > QUANTIZATION_STD:  # NaN too: a blank measurement has no noise to estimate
            return (QUANTIZATION_STD if blind_along_t else None), True
        return sigma, True
    return (noise_std or None), False


def tweedie_error_var(a_t: float, v: float | None = None) -> float:
    """s_t^2 = v tau / (v + tau), tau = (1 - a_t) / (4 a_t): the Tweedie estimate's error in [0, 1] units.

    ``v`` None reads :data:`PRIOR_SPREAD`.
    """
    v = PRIOR_SPREAD if v is None else v
    tau = (1 - a_t) / (4 * a_t)
    return v * tau / (v + tau)


def map_weight(a_t: float, sigma_y: float, v: float | None = None) -> float:
    """w_t = s_t^2 / sigma_y^2, the weight of (I + w_t A^T A) x = x0 + w_t A^T y."""
    return tweedie_error_var(a_t, v) / sigma_y**2
