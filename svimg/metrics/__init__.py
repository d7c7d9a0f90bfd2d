"""Video quality metrics; inputs as in the functional API (numpy, torch, xarray, zarr), values in [0, 1].

``psnr``, ``ssim`` (= skimage's structural_similarity), ``temporal_consistency``
(error of frame-to-frame changes), ``evaluate`` (all three, averaged and per
frame); ``lpips`` and ``fvd`` on locally available weights only.
"""

from ._perceptual import fvd, frechet_distance, lpips
from ._quality import evaluate, psnr, ssim, temporal_consistency

__all__ = ["psnr", "ssim", "temporal_consistency", "evaluate", "lpips", "fvd", "frechet_distance"]
