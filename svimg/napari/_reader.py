"""napari reader: svimg zarr stores, TIFF stacks, mp4 and gif videos, through :func:`svimg.io.load`.

Each file becomes one image layer with axis labels t, y, x, values in [0, 1]
(a colour video as an RGB ``(t, y, x, 3)`` layer) and the file's provenance
attrs as layer metadata.
"""

from __future__ import annotations

import os

from ._layers import video_to_layer

__all__ = ["SUFFIXES", "get_reader", "read_videos"]

SUFFIXES = (".zarr", ".tif", ".tiff", ".mp4", ".gif")


def _supported(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).rstrip("/\\").lower().endswith(SUFFIXES)


def get_reader(path):
    """npe2 reader hook: :func:`read_videos` when every path in ``path`` has a supported suffix, else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if paths and all(_supported(p) for p in paths):
        return read_videos
    return None


def read_videos(path) -> list[tuple]:
    """Load one path or a list of paths with :func:`svimg.io.load`; one image ``LayerDataTuple`` per file."""
    from svimg import io

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    layers = []
    for p in paths:
        name = os.path.splitext(os.path.basename(os.fspath(p).rstrip("/\\")))[0]
        layers.append(video_to_layer(io.load(p), name=name))
    return layers
