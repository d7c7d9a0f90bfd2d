"""The one conversion between napari image-layer data and svimg videos.

napari shows a single-channel stack as ``(t, y, x)`` and a colour stack as
``(t, y, x, 3)`` with ``rgb=True``; svimg computes on ``(t, c, y, x)`` with
values in [0, 1].  Reader, writer, sample data and widgets all go through
:func:`layer_to_video` and :func:`video_to_layer`, so the axis bookkeeping lives
here only.  This module imports neither Qt nor napari.
"""

from __future__ import annotations

import numpy as np

__all__ = ["AXIS_LABELS", "layer_to_video", "video_to_layer", "tcyx_to_layer_data"]

AXIS_LABELS = ("t", "y", "x")


def _as_unit_float(data, name: str):
    """Float data as it is; integer data divided by its dtype's maximum, so values land in [0, 1]."""
    dtype = np.dtype(data.dtype)
    if dtype.kind == "f":
        return data
    if dtype.kind in "ui":
        return data.astype(np.float32) / np.float32(np.iinfo(dtype).max)
    if dtype.kind == "b":
        return data.astype(np.float32)
    raise TypeError(f"{name} must hold real numbers (float, integer or bool), got dtype {dtype}")


def layer_to_video(data, *, rgb: bool, metadata: dict | None = None, name: str | None = None):
    """Image-layer data -> ``xarray.DataArray`` with dims ``("t", "c", "y", "x")`` in [0, 1].

    ``data`` is ``(t, y, x)`` (``rgb`` false; becomes c = 1) or ``(t, y, x, 3)``
    (``rgb`` true; channels-last becomes channels-first).  Integer data is
    scaled by its dtype's maximum.  The string/number entries of ``metadata``
    (the provenance attrs svimg writes) become the DataArray's attrs.  Numpy
    and dask arrays stay as they are (no copy, nothing computed).
    """
    import xarray as xr

    label = f"layer {name!r}" if name else "layer data"
    if not hasattr(data, "ndim") or not hasattr(data, "dtype"):
        raise TypeError(f"{label} must be an array, got {type(data).__name__}")
    if rgb:
        if data.ndim != 4 or data.shape[-1] != 3:
            raise ValueError(f"{label} is RGB, so it must be (t, y, x, 3); got shape {tuple(data.shape)}")
        tcyx = data.transpose(0, 3, 1, 2)
    else:
        if data.ndim != 3:
            raise ValueError(
                f"{label} must be a (t, y, x) stack or an RGB (t, y, x, 3) one; got shape {tuple(data.shape)}"
            )
        tcyx = data[:, None]
    attrs = {k: v for k, v in (metadata or {}).items() if isinstance(v, (str, int, float, bool))}
    return xr.DataArray(_as_unit_float(tcyx, label), dims=("t", "c", "y", "x"), name=name, attrs=attrs)


def tcyx_to_layer_data(tcyx):
    """A ``(t, c, y, x)`` array -> ``(layer_data, rgb)``: c = 1 gives ``(t, y, x)``, c = 3 gives ``(t, y, x, 3)``."""
    if tcyx.ndim != 4 or tcyx.shape[1] not in (1, 3):
        raise ValueError(f"a video for napari must be (t, 1 or 3, y, x), got shape {tuple(tcyx.shape)}")
    if tcyx.shape[1] == 1:
        return tcyx[:, 0], False
    return tcyx.transpose(0, 2, 3, 1), True


def video_to_layer(video, name: str | None = None, metadata: dict | None = None, **kwargs) -> tuple:
    """An svimg video -> napari ``LayerDataTuple`` ``(data, kwargs, "image")``.

    ``video`` is a DataArray with dims ``("t", "c", "y", "x")`` or ``("t", "y", "x")``
    in any order.  The layer gets axis labels t, y, x, contrast limits [0, 1],
    ``rgb`` for three channels, and the DataArray's attrs (svimg provenance)
    plus ``metadata`` as layer metadata.  Extra ``kwargs`` go to the layer.
    """
    dims = set(video.dims)
    if dims == {"t", "y", "x"}:
        video = video.expand_dims("c", axis=1)
    elif dims != {"t", "c", "y", "x"}:
        raise ValueError(f"video must have dims ('t', 'c', 'y', 'x') or ('t', 'y', 'x'), got {tuple(video.dims)}")
    data, rgb = tcyx_to_layer_data(video.transpose("t", "c", "y", "x").data)
    layer_kwargs = {
        "name": name if name is not None else video.name,
        "metadata": {**video.attrs, **(metadata or {})},
        "axis_labels": AXIS_LABELS,
        "rgb": rgb,
        "contrast_limits": (0.0, 1.0),
        **kwargs,
    }
    return data, layer_kwargs, "image"
