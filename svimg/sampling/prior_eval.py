"""Evaluating an image prior on a whole video: frames as the batch axis, in chunks, channels adapted.

``PriorEvaluator(prior, channels, batch_size)(x, t)`` returns ``eps`` for a
(T, C, H, W) tensor ``x`` at the integer timestep ``t`` (the same for every
frame).  Frames go through ``prior.eps`` in chunks of at most ``batch_size``,
so the prior's peak memory does not grow with T; an image prior treats batch
items independently, so the result equals one big batch up to float rounding.

Single-channel data (C = 1) with a multi-channel prior (e.g. RGB): each frame
is replicated over the prior's channels and the predicted noise is averaged
back over them.  Any other channel mismatch raises ``ValueError``.

Everything here is differentiable, so DPS can back-propagate through it.
"""

from __future__ import annotations

import torch

from .._validate import check_positive_int
from .budget import measured

__all__ = ["PriorEvaluator", "check_prior", "prior_identity"]


def check_prior(prior):
    """Raise ``TypeError`` unless ``prior`` follows the prior protocol (betas, channels, eps)."""
    missing = [a for a in ("betas", "channels", "eps") if not hasattr(prior, a)]
    if missing or not callable(prior.eps):
        raise TypeError(
            f"prior must provide betas, channels and eps(x_t, t) (see svimg.priors); "
            f"{type(prior).__name__} lacks {', '.join(missing) or 'a callable eps'}"
        )
    return prior


def prior_identity(prior) -> dict:
    """Provenance fields naming the prior: its ``name`` (or class name), ``sha256`` (or None) and ``flips`` (or 1; "cycle" for one mirror per step)."""
    name = getattr(prior, "name", None) or type(prior).__name__
    return {"prior": str(name), "prior_sha256": getattr(prior, "sha256", None),
            "prior_flips": getattr(prior, "flips", 1)}


class PriorEvaluator:
    """eps(x, t) for a (T, C, H, W) video through an image ``prior`` (see the module docstring).

    Parameters
    ----------
    prior : prior protocol object
    channels : int
        C of the data.
    batch_size : int or None
        Most frames per call to ``prior.eps``; None evaluates all frames at once
        unless ``auto`` is given.
    auto : :class:`svimg.sampling.budget.AutoBatch` or None
        With ``batch_size`` None: the first call measures the prior on its first
        frames and sets ``batch_size`` to the most frames that fit in memory.
    """

    def __init__(self, prior, channels: int, batch_size: int | None = None, auto=None):
        self.prior = check_prior(prior)
        self.prior_channels = int(prior.channels)
        if channels == self.prior_channels:
            self.replicate = False
        elif channels == 1:
            self.replicate = True
        else:
            raise ValueError(
                f"the prior takes {self.prior_channels} channel(s) but the data has {channels}; "
                f"only single-channel data can be run through a multi-channel prior (by channel replication)"
            )
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.auto = auto if self.batch_size is None else None

    def chunks(self, n_frames: int) -> list[slice]:
        """The frame slices evaluated together."""
        size = self.batch_size or n_frames
        return [slice(i, min(i + size, n_frames)) for i in range(0, n_frames, size)]

    def __call__(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """eps for every frame of ``x`` at timestep ``t``, in ``x``'s dtype.

        ``x`` goes in in the sampler's working dtype (float32/float64); the prior
        chooses its own compute precision (``prior.dtype``, e.g. autocast on CUDA).
        """
        if self.auto is not None and self.batch_size is None:
            return self._first_call(x, t)
        chunks = self.chunks(x.shape[0])
        if len(chunks) == 1 or (torch.is_grad_enabled() and x.requires_grad):
            return torch.cat([self._eval(x[s], t) for s in chunks])
        out = torch.empty_like(x)  # filled chunk by chunk: no second video-sized copy
        for s in chunks:
            out[s] = self._eval(x[s], t)
        return out

    def _first_call(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Measure the prior on the first frames, choose ``batch_size`` (``auto``), then do the rest."""
        n = self.auto.first_frames(x.shape[0], x.shape[-2] * x.shape[-1])
        self.auto.start()
        with measured(x.device) as m:
            head = self._eval(x[:n], t)
        self.batch_size = self.auto.decide(x, n, m)
        if n == x.shape[0]:
            return head
        out = torch.empty_like(x)
        out[:n] = head
        del head
        for s in self.chunks(x.shape[0] - n):
            out[n + s.start:n + s.stop] = self._eval(x[n + s.start:n + s.stop], t)
        return out

    def _eval(self, x: torch.Tensor, t: int) -> torch.Tensor:
        inp = x.expand(-1, self.prior_channels, -1, -1) if self.replicate else x
        steps = torch.full((x.shape[0],), int(t), dtype=torch.int64, device=x.device)
        eps = self.prior.eps(inp, steps)
        if tuple(eps.shape) != tuple(inp.shape):
            raise ValueError(f"prior.eps returned shape {tuple(eps.shape)} for input of shape {tuple(inp.shape)}")
        if self.replicate:
            eps = eps.mean(dim=1, keepdim=True)
        return eps.to(x.dtype)
