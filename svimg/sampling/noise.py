"""Where the sampler's randomness comes from: the three noise modes of the paper's ablation.

=============== ================================ ===============================
mode            initial x_T                      per-step re-noising z
=============== ================================ ===============================
``"batch"``     one (1, C, H, W) draw, repeated  one (1, C, H, W) draw per step,
                over all T frames                repeated over all frames
``"initial"``   shared, as above                 independent (T, C, H, W) draws
``"independent"`` independent (T, C, H, W) draw  independent (T, C, H, W) draws
=============== ================================ ===============================

``"batch"`` is the paper's batch-consistent sampling.  Every draw comes from
one ``torch.Generator`` in a fixed order (x_T first, then one draw per
re-noising step), so a seed fixes the whole run.
"""

from __future__ import annotations

import numbers
import secrets

import torch

__all__ = ["NOISE_MODES", "NoiseSource", "make_generator"]

NOISE_MODES = ("batch", "initial", "independent")


def make_generator(seed: int | None, generator: torch.Generator | None) -> tuple[torch.Generator, object]:
    """The generator to draw from, and what provenance records about it.

    ``seed`` gives a fresh CPU generator (draws are then identical on every
    device); ``generator`` is used as given; with neither, a seed is picked
    from the OS and recorded so the run can be repeated.
    """
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator, f"generator(initial_seed={generator.initial_seed()})"
    if seed is None:
        seed = secrets.randbits(63)
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return torch.Generator(device="cpu").manual_seed(int(seed)), int(seed)


class NoiseSource:
    """Gaussian draws shaped like the video, shared over frames or not according to ``mode``."""

    def __init__(self, mode: str, shape: tuple, generator: torch.Generator, dtype: torch.dtype, device: torch.device):
        if mode not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {mode!r}")
        self.mode, self.shape, self.generator, self.dtype, self.device = mode, tuple(shape), generator, dtype, device

    def _draw(self, shared: bool) -> torch.Tensor:
        T = self.shape[0]
        z = torch.randn((1 if shared else T, *self.shape[1:]), generator=self.generator,
                        dtype=self.dtype, device=self.generator.device).to(self.device)
        return z.expand(T, -1, -1, -1) if shared else z

    def initial(self) -> torch.Tensor:
        """x_T (a tensor of its own): shared over frames for "batch" and "initial"."""
        return self._draw(self.mode != "independent").contiguous()

    def step(self) -> torch.Tensor:
        """The re-noising draw z of one step: shared over frames only for "batch" (then a read-only
        broadcast view of one frame, which holds no video-sized memory)."""
        return self._draw(self.mode == "batch")
