"""Centre crop to a square and resize: the paper's video preprocessing (crop, then resize to 256).

One implementation for the whole package: :func:`svimg.io.load` (``size=``)
and :mod:`svimg.data` both call :func:`center_crop_resize`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._validate import check_positive_int

__all__ = ["center_crop_resize"]


def center_crop_resize(frames, size: int) -> np.ndarray:
    """Crop the central square of every frame, then resize it to ``size`` x ``size``.

    ``frames`` is any real array shaped (..., H, W) (leading axes such as t and c
    are kept).  The square has side ``s = min(H, W)`` and starts at row
    ``(H - s) // 2``, column ``(W - s) // 2``.  Resizing is bilinear with
    antialiasing (a triangle filter widened by the scale factor when shrinking,
    as PIL/torchvision do), so every output pixel is a convex combination of
    input pixels: values in [0, 1] stay in [0, 1].  Returns float32; a frame
    already ``size`` x ``size`` is returned unchanged (as float32).
    """
    size = check_positive_int(size, "size")
    arr = np.asarray(frames)
    if arr.ndim < 2:
        raise ValueError(f"frames must have shape (..., H, W), got an array of shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"frames must hold real numbers, got dtype {arr.dtype}")
    H, W = arr.shape[-2:]
    if H == 0 or W == 0:
        raise ValueError(f"frames are empty (shape {arr.shape})")
    s = min(H, W)
    top, left = (H - s) // 2, (W - s) // 2
    square = arr[..., top : top + s, left : left + s].astype(np.float32)
    if s == size:
        return np.ascontiguousarray(square)
    lead = square.shape[:-2]
    flat = torch.from_numpy(np.ascontiguousarray(square)).reshape(-1, 1, s, s)
    out = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, size, size).numpy()
