"""A closed-form diffusion prior for tests and for checking samplers exactly.

Data model: every pixel of every channel is independent, ``x0 ~ N(mean, std^2)``
in the prior's [-1, 1] units.  Under the forward process
``x_t = sqrt(a) x0 + sqrt(1 - a) e`` (``a`` = cumulative product of
``1 - beta``), ``x_t ~ N(sqrt(a) mean, a std^2 + 1 - a)`` and the optimal
noise predictor (the posterior mean of ``e``) is exact::

    eps(x_t, t) = sqrt(1 - a_t) (x_t - sqrt(a_t) mean) / (a_t std^2 + 1 - a_t)

so Tweedie's estimate is ``E[x0 | x_t] = mean + sqrt(a_t) std^2 (x_t - sqrt(a_t) mean) / (a_t std^2 + 1 - a_t)``.
"""

from __future__ import annotations

import math
import numbers

import torch

from .schedule import alphas_cumprod, linear_betas

__all__ = ["GaussianPrior"]


class GaussianPrior:
    """Pixelwise Gaussian prior ``x0 ~ N(mean, std^2)`` with its exact ``eps`` (see the module docstring).

    Follows the prior protocol of :mod:`svimg.priors`: ``betas`` (1000 linear
    betas 1e-4..0.02, float64), ``channels``, ``dtype``, ``eps(x_t, t)``,
    ``name``, ``sha256`` (None: there are no weights) and ``spread`` (its per-pixel variance,
    which the noisy data step's weight uses in place of the network priors' constant).

    Parameters
    ----------
    mean : float
        Mean of every pixel in [-1, 1] units.
    std : float
        Standard deviation (> 0) in [-1, 1] units.
    channels : int
        Number of channels the prior accepts.
    dtype : torch.dtype
        Dtype ``eps`` computes and returns in.
    """

    sha256 = None

    def __init__(self, mean: float = 0.0, std: float = 0.5, channels: int = 3, dtype: torch.dtype = torch.float32):
        for value, what in ((mean, "mean"), (std, "std")):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"{what} must be a finite number, got {value!r}")
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.mean, self.std, self.channels, self.dtype = float(mean), float(std), int(channels), dtype
        self.betas = linear_betas()
        self.alphas_cumprod = alphas_cumprod(self.betas)

    @property
    def spread(self) -> float:
        """Per-pixel variance in [0, 1] units, std^2 / 4: the Tweedie error's high-noise limit
        (:func:`svimg.sampling.noise_level.tweedie_error_var`), exact for this prior."""
        return self.std**2 / 4

    @property
    def name(self) -> str:
        return f"GaussianPrior(mean={self.mean:g}, std={self.std:g}, channels={self.channels})"

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Exact E[e | x_t] for x_t (B, C, H, W) at integer timesteps t (B,)."""
        if x_t.ndim != 4 or x_t.shape[1] != self.channels:
            raise ValueError(f"x_t must be (B, {self.channels}, H, W), got shape {tuple(x_t.shape)}")
        t = torch.as_tensor(t, device=x_t.device).reshape(-1)
        if t.shape[0] != x_t.shape[0]:
            raise ValueError(f"t must hold one timestep per batch item ({x_t.shape[0]}), got {t.shape[0]}")
        a = self.alphas_cumprod.to(x_t.device)[t.long()].reshape(-1, 1, 1, 1)
        x = x_t.to(torch.float64)
        eps = (1 - a).sqrt() * (x - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)
        return eps.to(self.dtype)

    def __repr__(self) -> str:
        return self.name
