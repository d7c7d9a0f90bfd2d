"""The DDPM noise schedule shared by every prior: betas, cumulative alphas, noise-level lookup."""

from __future__ import annotations

import torch

__all__ = ["linear_betas", "alphas_cumprod", "timestep_for_sigma"]


def linear_betas(steps: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """Linear schedule ``beta_t = start + (end - start) t / (steps - 1)``, t = 0..steps-1, float64."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not 0 < start <= end < 1:
        raise ValueError(f"betas need 0 < start <= end < 1, got start={start}, end={end}")
    return torch.linspace(start, end, steps, dtype=torch.float64)


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """``a_t = prod_{s <= t} (1 - beta_s)`` in float64."""
    return torch.cumprod(1 - betas.to(torch.float64), dim=0)


def timestep_for_sigma(betas: torch.Tensor, sigma: float) -> int:
    """The t whose noise-to-signal ratio ``sqrt((1 - a_t) / a_t)`` is closest to ``sigma`` ([-1, 1] units)."""
    a = alphas_cumprod(betas)
    return int(torch.argmin(((1 - a) / a).sqrt().sub(sigma).abs()))
