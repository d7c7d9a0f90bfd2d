"""Full-reference video quality: PSNR, SSIM and a temporal-consistency error, per frame or averaged.

Inputs are anything the functional API accepts (numpy, torch, xarray, zarr
stores; (T, C, H, W) or (T, H, W), or channels-last arrays with
``channel_axis=-1``), values in [0, ``data_range``].  Arithmetic
is done in float64.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

from .._convert import to_volume

__all__ = ["psnr", "ssim", "temporal_consistency", "evaluate", "paired_volumes"]


def paired_volumes(x, ref, names: tuple[str, str] = ("x", "ref"),
                   channel_axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``ref`` (both in the layout ``channel_axis`` says, :mod:`svimg._convert`) as float64
    (T, C, H, W) tensors of the same shape (else ValueError naming both, by ``names``, and their shapes)."""
    a = to_volume(x, names[0], channel_axis=channel_axis).tensor.detach().to("cpu", torch.float64)
    b = to_volume(ref, names[1], channel_axis=channel_axis).tensor.detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)} (as (T, C, H, W))")
    return a, b


def _check_range(data_range) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not (
        math.isfinite(data_range) and data_range > 0
    ):
        raise ValueError(f"data_range must be a positive number (1 for videos in [0, 1]), got {data_range!r}")
    return float(data_range)


def _reduce(per_frame_values: np.ndarray, per_frame: bool):
    return per_frame_values if per_frame else float(per_frame_values.mean())


def psnr(x, ref, *, data_range: float = 1.0, per_frame: bool = False, channel_axis: int | None = None):
    """Peak signal-to-noise ratio in dB.

    For frame t: ``PSNR_t = 10 log10(data_range^2 / MSE_t)`` with
    ``MSE_t = mean over (c, y, x) of (x[t] - ref[t])^2`` (inf when equal).
    Returns the (T,) float64 array of ``PSNR_t`` when ``per_frame``, else their
    mean (the convention of video-restoration papers, not the PSNR of the
    whole-video MSE).
    """
    R = _check_range(data_range)
    a, b = paired_volumes(x, ref, channel_axis=channel_axis)
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).numpy()
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(R * R / mse)
    return _reduce(values, per_frame)


def ssim(x, ref, *, data_range: float = 1.0, win_size: int = 7, per_frame: bool = False,
         channel_axis: int | None = None):
    """Structural similarity (Wang et al. 2004) as ``skimage.metrics.structural_similarity`` computes it.

    Per frame and channel, with local means/variances over a ``win_size`` x
    ``win_size`` uniform window (sample covariance, normalised by ``N - 1``,
    ``N = win_size^2``), ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, ``R = data_range``::

        S = (2 mu_x mu_r + C1)(2 s_xr + C2) / ((mu_x^2 + mu_r^2 + C1)(s_x^2 + s_r^2 + C2))

    averaged over the window positions that lie fully inside the frame, then
    over channels (skimage's ``channel_axis``).  Equals
    ``structural_similarity(x[t], ref[t], data_range=R, channel_axis=0)`` (or
    without ``channel_axis`` for one channel).  Returns the (T,) array when
    ``per_frame``, else the mean over frames.
    """
    R = _check_range(data_range)
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    a, b = paired_volumes(x, ref, channel_axis=channel_axis)
    T, C, H, W = a.shape
    if min(H, W) < win_size:
        raise ValueError(f"ssim with win_size={win_size} needs frames at least {win_size}x{win_size}, got {H}x{W}")
    a, b = a.reshape(T * C, 1, H, W), b.reshape(T * C, 1, H, W)

    def mean(v):  # the window average at every position fully inside the frame
        return F.avg_pool2d(v, win_size, stride=1)

    n = win_size * win_size
    cov_norm = n / (n - 1)
    mu_a, mu_b = mean(a), mean(b)
    var_a = cov_norm * (mean(a * a) - mu_a * mu_a)
    var_b = cov_norm * (mean(b * b) - mu_b * mu_b)
    cov = cov_norm * (mean(a * b) - mu_a * mu_b)
    c1, c2 = (0.01 * R) ** 2, (0.03 * R) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    values = s.mean(dim=(1, 2, 3)).reshape(T, C).mean(dim=1).numpy()
    return _reduce(values, per_frame)


def temporal_consistency(x, ref, *, per_frame: bool = False, channel_axis: int | None = None):
    """Temporal-consistency error: RMS difference between the frame-to-frame changes of ``x`` and ``ref``.

    With ``d_t(v) = v[t + 1] - v[t]`` for t = 0 .. T-2::

        E_t = sqrt(mean over (c, y, x) of (d_t(x) - d_t(ref))^2)
        E   = sqrt(mean over t of E_t^2)

    in the units of the data (lower is better; 0 means every change between
    consecutive frames matches the reference, whatever a constant offset).
    Flicker and temporal smearing raise it even when per-frame PSNR is high.
    Returns the (T-1,) array of ``E_t`` when ``per_frame``, else ``E``.  Needs T >= 2.
    """
    a, b = paired_volumes(x, ref, channel_axis=channel_axis)
    if a.shape[0] < 2:
        raise ValueError(f"temporal_consistency needs at least 2 frames, got {a.shape[0]}")
    diff = (a[1:] - a[:-1]) - (b[1:] - b[:-1])
    squares = (diff**2).mean(dim=(1, 2, 3)).numpy()
    return np.sqrt(squares) if per_frame else float(np.sqrt(squares.mean()))


def evaluate(x, ref, *, data_range: float = 1.0, names: tuple[str, str] = ("x", "ref"),
             channel_axis: int | None = None) -> dict:
    """Every full-reference metric at once.

    Returns {"psnr", "ssim", "temporal_consistency"} (the averages defined
    above) and the same names with ``_per_frame`` (lists of floats);
    the temporal entries are left out for a single frame.  ``names`` are how
    errors call ``x`` and ``ref``; ``channel_axis`` is their layout (:mod:`svimg._convert`).
    """
    a, b = paired_volumes(x, ref, names, channel_axis)  # convert once for all metrics
    per_frame = {
        "psnr": psnr(a, b, data_range=data_range, per_frame=True, channel_axis=1),
        "ssim": ssim(a, b, data_range=data_range, per_frame=True, channel_axis=1),
    }
    out = {name: float(v.mean()) for name, v in per_frame.items()}
    if a.shape[0] >= 2:
        per_frame["temporal_consistency"] = temporal_consistency(a, b, per_frame=True, channel_axis=1)
        out["temporal_consistency"] = float(np.sqrt((per_frame["temporal_consistency"] ** 2).mean()))
    out.update({f"{name}_per_frame": v.tolist() for name, v in per_frame.items()})
    return out
