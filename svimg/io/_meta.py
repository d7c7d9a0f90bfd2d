"""DataArray metadata shared by the readers and writers: dims, JSON-safe attrs, coordinates.

Formats without native coordinates or attributes (TIFF, .npz) keep them as one
JSON document (:func:`encode` / :func:`decode`); zarr stores keep coordinates
as arrays of their own and attrs as zarr attributes, cleaned by :func:`json_attrs`.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

__all__ = ["VIDEO_DIMS", "WINDOWED_RUN_ATTR", "as_video_dataarray", "json_attrs", "encode", "decode"]

VIDEO_DIMS = ("t", "c", "y", "x")
FRAME_DIMS = ("t", "y", "x")
#: attr of a store written window by window (svimg.sampling.windows): layout, seed, windows_done, complete
WINDOWED_RUN_ATTR = "svimg_windowed"


def canonical_dims(dims, name: str = "da") -> tuple:
    """("t", "c", "y", "x") or ("t", "y", "x") for a DataArray with those dims in any order."""
    if set(dims) == set(VIDEO_DIMS) and len(dims) == 4:
        return VIDEO_DIMS
    if set(dims) == set(FRAME_DIMS) and len(dims) == 3:
        return FRAME_DIMS
    raise ValueError(f"{name} must have dims ('t', 'c', 'y', 'x') or ('t', 'y', 'x') (any order), got {tuple(dims)}")


def as_video_dataarray(x, name: str = "da") -> xr.DataArray:
    """``x`` as a DataArray in (t, [c,] y, x) order; numpy arrays and torch tensors get dims by ndim.

    DataArrays are transposed, never copied (dask data stays lazy).  Empty videos and dtypes
    :func:`svimg.io.load` cannot read back (complex, strings, objects) raise.
    """
    if isinstance(x, xr.DataArray):
        da = x.transpose(*canonical_dims(x.dims, name))
    else:
        if type(x).__module__.startswith("torch"):
            x = x.detach().cpu().numpy()
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be an xarray.DataArray, numpy array or torch tensor, got {type(x).__name__}")
        if x.ndim not in (3, 4):
            raise ValueError(f"{name} must be (T, C, H, W) or (T, H, W), got an array of shape {x.shape}")
        da = xr.DataArray(x, dims=VIDEO_DIMS if x.ndim == 4 else FRAME_DIMS)
    if 0 in da.shape:
        raise ValueError(f"{name} is empty (shape {da.shape}); every axis needs at least one element")
    if da.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (float, integer or boolean), got dtype {da.dtype}")
    return da


def _plain(value):
    """A JSON-serialisable version of an attribute value (numpy values become Python ones, others their repr)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def json_attrs(attrs: dict) -> dict:
    """``attrs`` with every value JSON-serialisable: numpy scalars/arrays -> numbers/lists, tuples -> lists,
    anything else -> its ``repr``."""
    return {str(k): _plain(v) for k, v in attrs.items()}


def coord_values(values: np.ndarray) -> np.ndarray:
    """Coordinate values as a plain numpy array (variable-width strings become fixed-width unicode)."""
    values = np.asarray(values)
    if values.dtype.kind == "T" or values.dtype == object:
        values = np.array(values.tolist(), dtype=str)
    return values


def encode(da: xr.DataArray) -> dict:
    """Everything but the pixel data, as a JSON-serialisable dict: dims, name, attrs, coordinates."""
    coords = {}
    for key, coord in da.coords.items():
        values = coord_values(coord.values)
        listed = values.astype(str).tolist() if values.dtype.kind in "mM" else values.tolist()
        coords[str(key)] = {"dims": list(coord.dims), "dtype": values.dtype.str, "values": listed,
                            "attrs": json_attrs(coord.attrs)}
    return {"dims": list(da.dims), "name": da.name, "attrs": json_attrs(da.attrs), "coords": coords}


def decode(meta: dict, data) -> xr.DataArray:
    """The DataArray that :func:`encode` described, around ``data`` (numpy or dask)."""
    coords = {key: (c["dims"], np.array(c["values"], dtype=np.dtype(c["dtype"])), c.get("attrs", {}))
              for key, c in meta["coords"].items()}
    return xr.DataArray(data, dims=tuple(meta["dims"]), coords=coords, name=meta.get("name"), attrs=meta["attrs"])


def dumps(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True)
