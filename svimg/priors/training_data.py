"""Training images for a prior: reading folders, videos and stacks, and multi-scale random crops.

A *pool* is a list of (C, H, W) float16 tensors in [0, 1] (sizes may differ).  Training draws a
pool uniformly (or with the given weights), an image uniformly from it, a square region whose
side r is log-uniform in [min_region, min(H, W)] (``min_region`` defaults to ``crop``), resizes
that region to ``crop`` x ``crop`` (antialiased when shrinking, bilinear when r < crop enlarges
it) and flips it horizontally with probability 1/2.  So a large photograph is seen at every scale
from native pixels (or an enlargement, soft like much camera video) to a whole-frame thumbnail.

Readers: still images (.png, .jpg, .jpeg, .webp, .bmp) through imageio; videos, TIFF stacks,
zarr stores and .npy/.npz through :func:`svimg.io.load` (every frame is one image).  Each image
is downscaled (antialiased) so that its shorter side is at most ``max_side``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io._paths import TIFF_SUFFIXES, VIDEO_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "read_sources", "random_crops", "bundled_pools", "fit_short_side"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_STACK_SUFFIXES = VIDEO_SUFFIXES + TIFF_SUFFIXES + (".npy", ".npz", ".zarr")


def fit_short_side(img: torch.Tensor, max_side: int) -> torch.Tensor:
    """(C, H, W) float image, downscaled (antialiased bilinear) so that min(H, W) <= max_side."""
    h, w = img.shape[-2:]
    s = max_side / min(h, w)
    if s >= 1:
        return img
    size = (max(1, round(h * s)), max(1, round(w * s)))
    return F.interpolate(img[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _files(source: Path) -> list[Path]:
    """``source`` itself, or every readable file below a folder (zarr stores count as files), sorted."""
    if not source.is_dir() or source.suffix.lower() == ".zarr" or (source / "zarr.json").exists():
        return [source]
    found = []
    for p in sorted(source.rglob("*")):
        if any(part.startswith(".") or part.lower().endswith(".zarr") for part in p.relative_to(source).parts[:-1]):
            continue
        suffix = p.suffix.lower()
        if (p.is_file() and suffix in IMAGE_SUFFIXES + _STACK_SUFFIXES) or (p.is_dir() and suffix == ".zarr"):
            found.append(p)
    return found


def _read_still(path: Path) -> np.ndarray:
    """(H, W, C) float32 in [0, 1]; grey stays 1 channel, an alpha channel is dropped."""
    import imageio.v3 as iio

    img = np.asarray(iio.imread(path))
    scale = np.float32(np.iinfo(img.dtype).max) if img.dtype.kind in "ui" else np.float32(1)
    img = img.astype(np.float32) / scale
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{path}: not a grey or RGB image (shape {img.shape})")
    return img[..., :3] if img.shape[-1] >= 3 else img[..., :1]


def _read_frames(path: Path) -> list[torch.Tensor]:
    """Every frame of a video / stack as (C, H, W) float32 tensors in [0, 1]."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [torch.from_numpy(np.ascontiguousarray(_read_still(path).transpose(2, 0, 1)))]
    from ..io import load

    da = load(path)
    arr = np.asarray(da.transpose("t", "c", "y", "x").values if "c" in da.dims else da.values[:, None])
    return [torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)) for f in arr]


def read_sources(sources, *, max_side: int = 768, channels: int | None = None, min_side: int = 16) -> list[torch.Tensor]:
    """Read every image / frame of ``sources`` (files or folders) as one pool of float16 (C, H, W) tensors.

    ``channels``: 1 or 3 to force (grey repeated to RGB; RGB averaged to grey); None requires
    every image to have the same channel count.  Raises ValueError naming the culprit for a source
    with no readable image, an unreadable file, mixed channel counts or images smaller than ``min_side``.
    """
    pool, first = [], None
    for source in sources:
        source = Path(source).expanduser()
        if not source.exists():
            raise ValueError(f"training source {str(source)!r} does not exist")
        files = _files(source)
        if not files:
            raise ValueError(f"training source {str(source)!r} holds no image, video or stack "
                             f"(looked for {', '.join(IMAGE_SUFFIXES + _STACK_SUFFIXES)})")
        for path in files:
            try:
                frames = _read_frames(path)
            except Exception as err:  # any library's error on a bad file becomes one line naming it
                raise ValueError(f"cannot read training file {str(path)!r}: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
            for f in frames:
                if channels is not None and f.shape[0] != channels:
                    f = f.mean(0, keepdim=True) if channels == 1 else f.expand(channels, -1, -1)
                if first is None:
                    first = (f.shape[0], path)
                elif f.shape[0] != first[0]:
                    raise ValueError(
                        f"training images have mixed channel counts: {str(first[1])!r} has {first[0]}, "
                        f"{str(path)!r} has {f.shape[0]}; pass channels=1 or 3 (--channels) to convert"
                    )
                if min(f.shape[-2:]) < min_side:
                    raise ValueError(f"training file {str(path)!r}: image {tuple(f.shape[-2:])} is smaller than {min_side} px")
                pool.append(fit_short_side(f, max_side).clamp(0, 1).half().contiguous())
    if not pool:
        raise ValueError("no training images were given")
    return pool


def random_crops(pools, batch: int, crop: int, gen: torch.Generator, weights=None,
                 min_region: int | None = None) -> torch.Tensor:
    """(batch, C, crop, crop) float32 crops in [-1, 1]: multi-scale, flipped; see the module docstring."""
    low = crop if min_region is None else min_region
    if not 1 <= low <= crop:
        raise ValueError(f"min_region must be in [1, crop={crop}], got {min_region}")
    w = torch.ones(len(pools)) if weights is None else torch.as_tensor(weights, dtype=torch.float)
    which = torch.multinomial(w, batch, replacement=True, generator=gen)
    out = []
    for p in which.tolist():
        imgs = pools[p]
        img = imgs[int(torch.randint(len(imgs), (1,), generator=gen))]
        h, wd = img.shape[-2:]
        top = max(low, min(h, wd))
        r = int(round(math.exp(math.log(low) + float(torch.rand((), generator=gen)) * math.log(top / low))))
        r = min(max(r, min(low, h, wd)), min(h, wd))
        y = int(torch.randint(h - r + 1, (1,), generator=gen))
        x = int(torch.randint(wd - r + 1, (1,), generator=gen))
        patch = img[:, y : y + r, x : x + r].float()[None]
        if r != crop:
            patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", antialias=r > crop, align_corners=False)
        if bool(torch.rand((), generator=gen) < 0.5):
            patch = patch.flip(-1)
        out.append(patch[0])
    return torch.stack(out) * 2 - 1


def bundled_pools(photo_dir, *, max_side: int = 768) -> list[list[torch.Tensor]]:
    """The bundled prior's training pools: [scikit-image stills, bigbuckbunny frames, Debian photographs].

    ``photo_dir`` is the folder written by ``scripts/fetch_training_photos.sh``.  carphone, bikes
    and every other package's samples stay unseen (they are the held-out evaluation data).
    """
    from ..data import clip_path, stills

    still = [fit_short_side(torch.from_numpy(a.transpose(2, 0, 1).copy()), max_side).half() for a in stills().values()]
    video = read_sources([clip_path("bigbuckbunny")], max_side=min(max_side, 512), channels=3)
    photos = read_sources([photo_dir], max_side=max_side, channels=3)
    return [still, video, photos]
