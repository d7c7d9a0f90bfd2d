"""napari writer: an image layer -> a zarr store with its provenance, through :func:`svimg.io.save`."""

from __future__ import annotations

import os

from ._layers import layer_to_video

__all__ = ["write_zarr"]


def write_zarr(path: str, data, attributes: dict) -> list[str]:
    """npe2 single-layer writer: save ``data`` (a (t, y, x) or RGB (t, y, x, 3) stack) to the zarr store ``path``.

    The layer's metadata (svimg provenance) becomes the store's attrs and its
    name the array name.  An existing ``path`` is not overwritten (svimg.io
    raises).  Returns ``[path]``.
    """
    from svimg import io

    video = layer_to_video(
        data, rgb=bool(attributes.get("rgb", False)), metadata=attributes.get("metadata"), name=attributes.get("name")
    )
    io.save(video, path)
    return [os.fspath(path)]
