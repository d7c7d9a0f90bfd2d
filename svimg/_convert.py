"""The one place where user arrays become (T, C, H, W) tensors and back.

Accepted: numpy arrays and torch tensors shaped (T, C, H, W) or (T, H, W);
xarray DataArrays with dims ("t", "c", "y", "x") or ("t", "y", "x") in any
order; zarr arrays and store paths (opened lazily by :mod:`svimg.io`, returned
as DataArrays).  Results come back as the type that went in: same dtype, same
device, and for xarray the dims in the input's order, the coordinates whose
lengths still fit, the input's attrs and any provenance added by the caller.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._validate import check_finite, check_volume, value_range

__all__ = ["Volume", "to_volume"]

VIDEO_DIMS = ("t", "c", "y", "x")


def _is_dataarray(x) -> bool:
    if not type(x).__module__.startswith("xarray"):
        return False  # xarray is imported only for xarray inputs
    import xarray as xr

    return isinstance(x, xr.DataArray)


def _is_lazy_store(x) -> bool:
    return isinstance(x, (str, os.PathLike)) or type(x).__module__.startswith("zarr")


@dataclass
class Volume:
    """A (T, C, H, W) tensor plus what is needed to give a result back in the caller's type."""

    tensor: torch.Tensor
    kind: str  # "numpy" | "torch" | "xarray"
    had_channel_axis: bool
    dtype: Any = None  # numpy / torch dtype of the input
    device: torch.device | None = None
    template: Any = None  # the input DataArray
    attrs: dict = field(default_factory=dict)
    value_range: tuple[float, float] | None = None  # (min, max), found by the finite check

    def wrap(self, out: torch.Tensor, provenance=None):
        """Return the (T, C, H, W) tensor ``out`` as the input's type and layout.

        ``provenance`` (a dict, or a callable returning one, evaluated only for
        xarray results) becomes the DataArray's extra attrs.
        """
        if not self.had_channel_axis:
            if out.shape[1] != 1:
                raise ValueError(f"cannot drop a channel axis of length {out.shape[1]}")
            out = out[:, 0]
        if self.kind == "torch":
            return out.to(device=self.device, dtype=self.dtype)
        array = out.detach().cpu().numpy().astype(self.dtype, copy=False)
        if self.kind == "numpy":
            return array
        return self._to_dataarray(array, (provenance() if callable(provenance) else provenance) or {})

    def _to_dataarray(self, array: np.ndarray, provenance: dict):
        import xarray as xr

        dims = VIDEO_DIMS if self.had_channel_axis else ("t", "y", "x")
        sizes = dict(zip(dims, array.shape))
        # Every coordinate (dimension, auxiliary or scalar) whose axes kept their length.
        coords = {
            name: coord
            for name, coord in self.template.coords.items()
            if all(sizes.get(d) == self.template.sizes[d] for d in coord.dims)
        }
        attrs = {**self.template.attrs, **provenance}
        da = xr.DataArray(array, dims=dims, coords=coords, name=self.template.name, attrs=attrs)
        return da.transpose(*self.template.dims)


def _from_dataarray(da, name: str):
    dims = set(da.dims)
    if dims == {"t", "c", "y", "x"}:
        order, had_c = VIDEO_DIMS, True
    elif dims == {"t", "y", "x"}:
        order, had_c = ("t", "y", "x"), False
    else:
        raise ValueError(
            f"{name} must have dims ('t', 'c', 'y', 'x') or ('t', 'y', 'x') (any order), got {tuple(da.dims)}"
        )
    data = np.asarray(da.transpose(*order).values)
    return data, had_c


def to_volume(x, name: str = "x", *, finite: bool = True, with_range: bool = False) -> Volume:
    """Convert ``x`` to a :class:`Volume` holding a (T, C, H, W) floating tensor.

    The caller's array is never modified: numpy and xarray data are copied or
    viewed read-only, tensors are only read.  Integer, boolean and complex
    dtypes raise ``TypeError``; wrong ndim, empty arrays and (with ``finite``)
    NaN/Inf raise ``ValueError``, naming ``name``.  Tensors are used as they are
    (no copy); the checks make one pass over the data: a sum, or with
    ``with_range`` a min/max that also fills ``Volume.value_range``.
    """
    if _is_lazy_store(x):
        from . import io

        x = io.as_dataarray(x)
    if _is_dataarray(x):
        data, had_c = _from_dataarray(x, name)
        vol = _from_numpy(data, name, had_c)
        vol.kind, vol.template, vol.attrs = "xarray", x, dict(x.attrs)
    elif isinstance(x, torch.Tensor):
        vol = _from_torch(x, name)
    elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        vol = _from_numpy(arr, name, _has_channel_axis(arr.ndim, name))
    else:
        raise TypeError(f"{name} must be a numpy array, torch tensor, xarray.DataArray or zarr store, got {type(x).__name__}")
    check_volume(vol.tensor, name)
    if with_range:
        vol.value_range = value_range(vol.tensor, name)
    elif finite:
        check_finite(vol.tensor, name)
    return vol


def _has_channel_axis(ndim: int, name: str) -> bool:
    if ndim not in (3, 4):
        raise ValueError(f"{name} must be (T, C, H, W) or (T, H, W), got {ndim} dimension(s)")
    return ndim == 4


def _check_dtype(is_float: bool, dtype, name: str):
    if not is_float:
        hint = ("take the real part or the magnitude first" if "complex" in str(dtype)
                else "convert integers with x.astype('float32') / 255 (or the bit depth's maximum)")
        raise TypeError(f"{name} must hold real floating-point values in [0, 1] (float16/32/64), got dtype {dtype}; {hint}")


def _from_numpy(arr: np.ndarray, name: str, had_c: bool) -> Volume:
    _check_dtype(arr.dtype.kind == "f", arr.dtype, name)
    _has_channel_axis(arr.ndim, name)
    tensor = torch.from_numpy(np.array(arr, copy=True))  # own copy: the caller's array is never touched
    if not had_c:
        tensor = tensor[:, None]
    return Volume(tensor, "numpy", had_c, dtype=arr.dtype)


def _from_torch(x: torch.Tensor, name: str) -> Volume:
    _check_dtype(x.is_floating_point() and not x.is_complex(), x.dtype, name)
    had_c = _has_channel_axis(x.ndim, name)
    tensor = x.detach() if had_c else x.detach()[:, None]
    return Volume(tensor, "torch", had_c, dtype=x.dtype, device=x.device)
