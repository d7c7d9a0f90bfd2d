"""Synthetic fluorescence time-lapse: moving, dividing Gaussian cells under Poisson-Gaussian noise."""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._validate import check_positive_int

__all__ = ["cells"]


def _check_nonneg(value, name: str, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


def _simulate(frames: int, size: int, n_cells: int, speed: float, rng: np.random.Generator):
    """Cell tracks: per frame, arrays of (y, x, sigma, brightness) of every cell alive; and the division frames.

    Each cell has a Gaussian profile (sigma 2-3.5 px, whatever the frame size:
    a larger frame is a larger field of view) and brightness in [0.5, 0.9],
    starts uniformly inside the central 80% of the frame; its velocity is an AR(1) process
    ``v <- 0.8 v + 0.6 speed n`` (n ~ N(0, I), stationary std ``speed``),
    reflected at the borders.  Every initial cell divides once, at a frame drawn
    uniformly from 1 .. 2*frames (so about half divide within the clip), into two
    daughters of sigma 0.8x and brightness 0.75x that start 0.5 sigma apart
    along a random axis and drift apart at 0.6 sigma per frame.
    """
    pos = rng.uniform(0.1 * size, 0.9 * size, (n_cells, 2))
    vel = rng.normal(0.0, speed, (n_cells, 2))
    sigma = rng.uniform(2.0, 3.5, n_cells)
    bright = rng.uniform(0.5, 0.9, n_cells)
    divide_at = rng.integers(1, 2 * frames + 1, n_cells).astype(float)
    tracks, divisions = [], []
    for t in range(frames):
        due = divide_at == t
        if due.any():
            angle = rng.uniform(0.0, np.pi, due.sum())
            axis = np.stack([np.sin(angle), np.cos(angle)], axis=1)
            offset = 0.5 * sigma[due, None] * axis
            kick = 0.6 * sigma[due, None] * axis
            pos = np.concatenate([pos[~due], pos[due] + offset, pos[due] - offset])
            vel = np.concatenate([vel[~due], vel[due] + kick, vel[due] - kick])
            sigma = np.concatenate([sigma[~due], 0.8 * sigma[due], 0.8 * sigma[due]])
            bright = np.concatenate([bright[~due], 0.75 * bright[due], 0.75 * bright[due]])
            divide_at = np.concatenate([divide_at[~due], np.full(2 * due.sum(), np.inf)])
            divisions += [t] * int(due.sum())
        tracks.append(np.column_stack([pos, sigma, bright]))
        vel = 0.8 * vel + 0.6 * speed * rng.normal(0.0, 1.0, vel.shape)
        pos = pos + vel
        for k in range(2):  # reflect at the borders of [0, size - 1]
            low, high = pos[:, k] < 0, pos[:, k] > size - 1
            pos[low, k], vel[low, k] = -pos[low, k], -vel[low, k]
            pos[high, k], vel[high, k] = 2 * (size - 1) - pos[high, k], -vel[high, k]
    return tracks, divisions


def cells(frames: int = 16, size: int = 64, n_cells: int | None = None, seed: int = 0, *, speed: float = 0.7,
          background: float = 0.05, photons: float | None = 100.0, read_noise: float = 0.02,
          return_truth: bool = False):
    """A synthetic fluorescence microscopy time-lapse, (t, y, x) float32 in [0, 1].

    Bright Gaussian cells drift (a smooth random walk of typical speed ``speed``
    pixels per frame, reflected at the borders) and divide into two daughters
    that move apart; nothing is downloaded.  The noise-free movie is

        truth[t] = clip(background + sum_k b_k exp(-|p - p_k(t)|^2 / (2 s_k^2)), 0, 1)

    and the recording adds Poisson shot noise and Gaussian read noise::

        noisy = clip(Poisson(photons * truth) / photons + read_noise * N(0, 1), 0, 1)

    (``photons`` is the expected photon count at intensity 1; ``photons=None``
    skips shot noise, ``read_noise=0`` read noise).

    Parameters
    ----------
    frames, size : int
        Number of frames and the side of the square frames in pixels.
    n_cells : int, optional
        Cells at the first frame; default ``max(1, round(8 * (size / 64)^2))``.
    seed : int
        All randomness (cell layout, motion, divisions, noise) comes from
        ``numpy.random.default_rng(seed)``: same arguments, same movie.
    return_truth : bool
        Also return the noise-free movie: ``(noisy, truth)`` instead of ``noisy``.

    Returns
    -------
    xarray.DataArray or (DataArray, DataArray)
        dims ("t", "y", "x"); attrs record every parameter, ``n_divisions``
        (divisions inside the clip) and ``division_frames`` (the first frame
        showing each division's daughters).  ``truth`` has the same attrs and ``noisy``
        is ``truth`` plus noise, so ``svimg.metrics.psnr(noisy, truth)`` is the
        recording's noise level.
    """
    import xarray as xr

    frames = check_positive_int(frames, "frames")
    size = check_positive_int(size, "size", minimum=8)
    n_cells = max(1, round(8 * (size / 64) ** 2)) if n_cells is None else check_positive_int(n_cells, "n_cells")
    seed = check_positive_int(seed, "seed", minimum=0)
    speed = _check_nonneg(speed, "speed")
    background = _check_nonneg(background, "background")
    photons = _check_nonneg(photons, "photons", allow_none=True)
    if photons == 0:
        raise ValueError("photons must be positive (or None for no shot noise), got 0")
    read_noise = _check_nonneg(read_noise, "read_noise")

    rng = np.random.default_rng(seed)
    tracks, divisions = _simulate(frames, size, n_cells, speed, rng)
    grid = np.arange(size, dtype=np.float64)
    truth = np.empty((frames, size, size))
    for t, cells_t in enumerate(tracks):
        y, x, s, b = cells_t.T
        gy = np.exp(-((grid[None, :] - y[:, None]) ** 2) / (2 * s[:, None] ** 2))  # separable Gaussians
        gx = np.exp(-((grid[None, :] - x[:, None]) ** 2) / (2 * s[:, None] ** 2))
        truth[t] = background + np.einsum("k,ky,kx->yx", b, gy, gx)
    truth = np.clip(truth, 0.0, 1.0)
    noisy = truth if photons is None else rng.poisson(photons * truth) / photons
    noisy = np.clip(noisy + read_noise * rng.standard_normal(truth.shape), 0.0, 1.0)

    attrs = {"svimg_data": "cells", "frames": frames, "size": size, "n_cells": n_cells, "seed": seed,
             "speed": speed, "background": background, "photons": photons,
             "read_noise": read_noise, "n_divisions": len(divisions), "division_frames": divisions}

    def wrap(values, name):
        return xr.DataArray(values.astype(np.float32), dims=("t", "y", "x"), name=name, attrs=dict(attrs))

    noisy_da = wrap(noisy, "cells")
    return (noisy_da, wrap(truth, "cells_truth")) if return_truth else noisy_da
