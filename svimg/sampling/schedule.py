"""The DDS timestep schedule, kept apart from the sampling loop (as diffusers separates schedulers from models).

For ``nfe`` steps out of the prior's ``N = len(betas)`` training steps
(``N = 1000`` for ADM)::

    skip = N // nfe
    timesteps = (nfe - 1) * skip, ..., 2 * skip, skip, 0      # 950, 900, ..., 50, 0 for nfe = 20
    pairs: (t_i, t_{i+1}), the last one (0, -1)
    a(t) = prod_{s <= t} (1 - beta_s),  a(-1) = 1

When N is a multiple of nfe the first timestep is ``N - skip`` as in the
reference code.  Otherwise the reference's ``range(0, N, skip)`` would hold
more than ``nfe`` steps; this schedule keeps exactly ``nfe`` (so exactly
``nfe`` prior evaluations) and warns which timesteps it uses.
"""

from __future__ import annotations

import math
import sys
import warnings

import torch

from .._validate import check_positive_int

__all__ = ["DDSSchedule"]


def _outside_svimg() -> int:
    """The warnings stacklevel of the first caller outside the svimg package (so the warning names user code)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "svimg":
        frame, level = frame.f_back, level + 1
    return level


class DDSSchedule:
    """``nfe`` evenly skipped timesteps of a prior's noise schedule ``betas`` (see the module docstring).

    Attributes
    ----------
    nfe, skip : int
    timesteps : tuple[int, ...]
        Descending, ending at 0.
    alphas_cumprod : torch.Tensor
        ``a(t)`` for t = 0 .. N-1, float64.
    """

    def __init__(self, nfe: int, betas: torch.Tensor | None = None):
        """``betas`` defaults to ADM's 1000 linear steps (:func:`svimg.priors.schedule.linear_betas`)."""
        from ..priors.schedule import alphas_cumprod, linear_betas  # lazy: priors may import the sampler

        if betas is None:
            betas = linear_betas()
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.ndim != 1 or betas.numel() == 0 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError(f"betas must be a non-empty 1-D array of values in (0, 1), got shape {tuple(betas.shape)}")
        n_train = betas.numel()
        nfe = check_positive_int(nfe, "nfe")
        if nfe > n_train:
            raise ValueError(f"nfe must be in 1..{n_train} (the prior's number of training steps), got {nfe}")
        self.nfe = nfe
        self.n_train = n_train
        self.skip = n_train // nfe
        self.timesteps = tuple(range((nfe - 1) * self.skip, -1, -self.skip))
        self.alphas_cumprod = alphas_cumprod(betas)
        if n_train % nfe:
            warnings.warn(
                f"{n_train} training steps are not a multiple of nfe={nfe}: skip = {n_train} // {nfe} = {self.skip}, "
                f"so the sampler uses the {nfe} timesteps {self._describe()}",
                UserWarning,
                stacklevel=_outside_svimg(),
            )

    def _describe(self) -> str:
        ts = self.timesteps
        return ", ".join(map(str, ts)) if len(ts) <= 8 else f"{ts[0]}, {ts[1]}, {ts[2]}, ..., {ts[-2]}, {ts[-1]}"

    def alpha_bar(self, t: int) -> float:
        """a(t) = prod_{s <= t} (1 - beta_s) as a float; a(-1) = 1."""
        if t == -1:
            return 1.0
        if not 0 <= t < self.n_train:
            raise ValueError(f"t must be in -1..{self.n_train - 1}, got {t}")
        return float(self.alphas_cumprod[t])

    def pairs(self) -> list[tuple[int, int]]:
        """[(t, t_next), ...]: each timestep with the next lower one, the last with -1."""
        ts = self.timesteps
        return list(zip(ts, ts[1:] + (-1,)))

    def renoise_coefficients(self, t_next: int, eta: float) -> tuple[float, float, float]:
        """(sqrt(a_next), c1, c2) with c1 = sqrt(1 - a_next) eta, c2 = sqrt(1 - a_next) sqrt(1 - eta^2)."""
        a_next = self.alpha_bar(t_next)
        return math.sqrt(a_next), math.sqrt(1 - a_next) * eta, math.sqrt(1 - a_next) * math.sqrt(1 - eta**2)

    def __len__(self) -> int:
        return self.nfe

    def __repr__(self) -> str:
        return f"DDSSchedule(nfe={self.nfe}, skip={self.skip}, timesteps=[{self._describe()}])"
