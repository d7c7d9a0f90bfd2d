"""Spatial degradations applied to every frame and channel alike.

``GaussianBlur``  2-D convolution with a normalised Gaussian, zero boundary, as
                  two 1-D passes (a symmetric kernel with zero padding is self-adjoint).
``Downsample``    f x f average pooling; its adjoint replicates each value over
                  its f x f block and divides by f^2.
``Mask``          pointwise product with a fixed 0/1 (or weighted) (H, W) mask,
                  the same for every frame and channel; self-adjoint.
``RandomMask``    a ``Mask`` keeping a fraction ``ratio`` of pixels, drawn from ``seed``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .. import _dispatch
from .._validate import check_positive_int, check_positive_number, check_unit_interval
from .base import AxisFactors, LinearOperator

__all__ = ["GaussianBlur", "Downsample", "Mask", "RandomMask"]


def _per_frame(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """(T, C, H, W) -> (T*C, 1, H, W) so one 2-D kernel treats every frame and channel alike."""
    T, C = x.shape[:2]
    return x.reshape(T * C, 1, *x.shape[2:]), (T, C)


class GaussianBlur(LinearOperator):
    """y = g * x per frame and channel: a size x size Gaussian, zero boundary, applied as two 1-D passes.

    ``g[i, j] = g1[i] g1[j]`` with ``g1[r] ∝ exp(-r^2 / (2 sigma^2))``, |r| <= size // 2,
    normalised so that g sums to 1.  The blur along H and then along W
    (:func:`svimg._dispatch.blur_apply`) equals the 2-D convolution exactly in
    exact arithmetic; g is symmetric and zero padding keeps the matrix
    symmetric, so the adjoint is the same map.
    """

    def __init__(self, size: int = 13, sigma: float = 2.0):
        self.size = check_positive_int(size, "size")
        if self.size % 2 == 0:
            raise ValueError(f"size must be odd so the blur is centred, got {size}")
        self.sigma = check_positive_number(sigma, "sigma")
        r = np.arange(self.size) - self.size // 2
        g1 = np.exp(-0.5 * (r / self.sigma) ** 2)
        self.taps = g1 / g1.sum()
        self.taps.setflags(write=False)
        self.kernel = np.outer(self.taps, self.taps)
        self.kernel.setflags(write=False)

    def forward(self, x):
        return _dispatch.blur_apply(x, self.taps)

    adjoint = forward

    def kronecker(self, input_shape):
        H, W = input_shape[2:]
        return AxisFactors(matrices={2: _dispatch.band_matrix(self.taps, H), 3: _dispatch.band_matrix(self.taps, W)})

    def __repr__(self):
        return f"GaussianBlur(size={self.size}, sigma={self.sigma:g})"


class Downsample(LinearOperator):
    """f x f average pooling: y[i, j] = mean of x over block (i, j); H and W must divide by f."""

    def __init__(self, factor: int = 4):
        self.factor = check_positive_int(factor, "factor")

    def output_shape(self, input_shape):
        T, C, H, W = input_shape
        f = self.factor
        if H % f or W % f:
            raise ValueError(
                f"Downsample(factor={f}) needs height and width divisible by {f}, got {H}x{W}; "
                f"crop or pad to {H - H % f}x{W - W % f} or {H + (-H) % f}x{W + (-W) % f}"
            )
        return (T, C, H // f, W // f)

    def input_shape(self, output_shape):
        T, C, h, w = output_shape
        return (T, C, h * self.factor, w * self.factor)

    def forward(self, x):
        return F.avg_pool2d(_per_frame(x)[0], self.factor).reshape(self.output_shape(tuple(x.shape)))

    def adjoint(self, y):
        """Each value divided by f^2 and spread over its f x f block (one scaled small volume, one expanding copy)."""
        f = self.factor
        T, C, h, w = y.shape
        spread = (y / (f * f))[:, :, :, None, :, None].expand(T, C, h, f, w, f)
        return spread.reshape(T, C, h * f, w * f)

    def pooling_matrix(self, n: int) -> np.ndarray:
        """The (n / f) x n matrix of 1-D average pooling: P[i, j] = 1 / f for j // f == i."""
        return np.kron(np.eye(n // self.factor), np.full((1, self.factor), 1.0 / self.factor))

    def kronecker(self, input_shape):
        self.output_shape(input_shape)  # raises for sizes that do not divide by f
        H, W = input_shape[2:]
        return AxisFactors(matrices={2: self.pooling_matrix(H), 3: self.pooling_matrix(W)})

    def __repr__(self):
        return f"Downsample({self.factor})"


class Mask(LinearOperator):
    """y = m ⊙ x with a fixed (H, W) mask broadcast over t and c; self-adjoint, A^T A = m^2 ⊙ x."""

    def __init__(self, mask):
        # A private float64 copy: the operator must not change when the caller edits their mask later.
        if isinstance(mask, torch.Tensor):
            m = mask.detach().to("cpu", torch.float64, copy=True)
        else:
            m = torch.tensor(np.asarray(mask), dtype=torch.float64)
        if m.ndim != 2:
            raise ValueError(f"mask must be a 2-D (H, W) array, got shape {tuple(m.shape)}")
        if m.numel() == 0:
            raise ValueError("mask is empty")
        if not torch.isfinite(m).all():
            raise ValueError("mask contains NaN or Inf")
        self.mask = m

    def output_shape(self, input_shape):
        if tuple(input_shape[-2:]) != tuple(self.mask.shape):
            raise ValueError(f"mask of shape {tuple(self.mask.shape)} does not fit frames of size {tuple(input_shape[-2:])}")
        return tuple(input_shape)

    def _m(self, x):
        self.output_shape(tuple(x.shape))
        return self.mask.to(device=x.device, dtype=x.dtype)

    def forward(self, x):
        return x * self._m(x)

    adjoint = forward

    def normal(self, x):
        m = self._m(x)
        return x * (m * m)

    def __repr__(self):
        H, W = self.mask.shape
        return f"Mask({H}x{W}, kept={float((self.mask != 0).double().mean()):.3f})"


class RandomMask(Mask):
    """A mask keeping a fraction ``ratio`` in (0, 1] of the pixels, the same in every frame and channel.

    The mask of an (H, W) frame is a pure function of (H, W, ratio, seed):
    ``numpy.random.default_rng(seed)`` chooses exactly ``round(ratio * H * W)``
    pixels to keep, so the same operator gives the same mask on every call.
    """

    def __init__(self, ratio: float = 0.5, seed: int = 0):
        self.ratio = check_unit_interval(ratio, "ratio", open_low=True)
        self.seed = check_positive_int(seed, "seed", minimum=0)

    def mask_for(self, H: int, W: int) -> torch.Tensor:
        """The (H, W) float64 0/1 mask used on frames of that size (a fresh copy)."""
        return _random_mask(H, W, self.ratio, self.seed).clone()

    def _m(self, x):
        return _random_mask(*x.shape[-2:], self.ratio, self.seed).to(device=x.device, dtype=x.dtype)

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def __repr__(self):
        return f"RandomMask(ratio={self.ratio:g}, seed={self.seed})"


@functools.lru_cache(maxsize=16)
def _random_mask(H: int, W: int, ratio: float, seed: int) -> torch.Tensor:
    keep = np.zeros(H * W)
    keep[np.random.default_rng(seed).permutation(H * W)[: int(round(ratio * H * W))]] = 1.0
    return torch.from_numpy(keep.reshape(H, W))
