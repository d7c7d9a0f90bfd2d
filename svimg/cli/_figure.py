"""Pictures of a comparison: a labelled PNG strip (rows = videos, columns = frames) and a side-by-side video."""

from __future__ import annotations

import numpy as np

from ..io._write import to_uint8

__all__ = ["display_frames", "moving_box", "crop", "strip_image", "side_by_side"]

_LABEL_WIDTH = 150
_GAP = 4


def display_frames(video, size: tuple[int, int], scale: int) -> np.ndarray:
    """(T, H', W', 3) uint8 frames of ``video`` ((T, C, h, w) or (T, h, w), values in [0, 1]) shown at
    ``size`` (H, W) times ``scale``: smaller frames (e.g. a low-resolution measurement) are enlarged
    by pixel repetition so that every row lines up."""
    v = np.asarray(video)
    if v.ndim == 4:
        v = v.transpose(0, 2, 3, 1)
    else:
        v = v[..., None]
    if v.shape[-1] == 1:
        v = np.repeat(v, 3, axis=-1)
    H, W = size
    fy, fx = H // v.shape[1], W // v.shape[2]
    v = np.repeat(np.repeat(v, fy * scale, axis=1), fx * scale, axis=2)
    return to_uint8(v)


def moving_box(video, side: int) -> tuple[int, int]:
    """(top, left) of the ``side`` x ``side`` window of ``video`` ((T, C, H, W) or (T, H, W)) that changes most
    over time: the largest sum over the window of the per-pixel temporal standard deviation (summed over c)."""
    v = np.asarray(video, dtype=np.float64)
    change = v.std(axis=0)
    change = change.sum(axis=0) if change.ndim == 3 else change
    sums = np.pad(change.cumsum(0).cumsum(1), ((1, 0), (1, 0)))  # summed-area table
    windows = sums[side:, side:] - sums[:-side, side:] - sums[side:, :-side] + sums[:-side, :-side]
    top, left = np.unravel_index(int(np.argmax(windows)), windows.shape)
    return int(top), int(left)


def crop(frames: np.ndarray, box: tuple[int, int, int], zoom: int) -> np.ndarray:
    """The (top, left, side) window of display frames (T, H, W, 3), enlarged ``zoom`` times by pixel repetition."""
    top, left, side = box
    window = frames[:, top : top + side, left : left + side]
    return np.repeat(np.repeat(window, zoom, axis=1), zoom, axis=2)


def strip_image(rows: list[tuple[str, str, np.ndarray]], frames: list[int], first: int = 0):
    """A PIL image with one row per (label, caption, display frames (T, H, W, 3) uint8), showing ``frames``
    (labelled as frame ``first + t``)."""
    from PIL import Image, ImageDraw, ImageFont

    H, W = rows[0][2].shape[1:3]
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    header = 22
    width = _LABEL_WIDTH + len(frames) * (W + _GAP)
    height = header + len(rows) * (H + _GAP)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for j, t in enumerate(frames):
        draw.text((_LABEL_WIDTH + j * (W + _GAP) + 4, 4), f"frame {first + t}", fill="black", font=small)
    for i, (label, caption, video) in enumerate(rows):
        top = header + i * (H + _GAP)
        draw.text((6, top + H // 2 - 16), label, fill="black", font=font)
        if caption:
            draw.text((6, top + H // 2 + 2), caption, fill=(60, 60, 60), font=small)
        for j, t in enumerate(frames):
            canvas.paste(Image.fromarray(video[t]), (_LABEL_WIDTH + j * (W + _GAP), top))
    return canvas


def side_by_side(rows: list[np.ndarray]):
    """The display videos next to each other (white gaps) as a uint8 (t, c, y, x) DataArray with even height
    and width (what H.264 needs)."""
    import xarray as xr

    T, H = rows[0].shape[:2]
    gap = np.full((T, H, _GAP, 3), 255, np.uint8)
    parts = [p for r in rows for p in (r, gap)][:-1]
    out = np.concatenate(parts, axis=2)
    pad_y, pad_x = out.shape[1] % 2, out.shape[2] % 2  # H.264 (yuv420p) needs even sides
    out = np.pad(out, ((0, 0), (0, pad_y), (0, pad_x), (0, 0)), constant_values=255)
    return xr.DataArray(out.transpose(0, 3, 1, 2), dims=("t", "c", "y", "x"))
