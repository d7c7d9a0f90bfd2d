"""The one place where user arrays become (T, C, H, W) tensors and back.

Accepted: numpy arrays and torch tensors shaped (T, C, H, W) or (T, H, W);
xarray DataArrays with dims ("t", "c", "y", "x") or ("t", "y", "x") in any
order; zarr arrays and store paths (opened lazily by :mod:`svimg.io`, returned
as DataArrays).  Results come back as the type that went in: same dtype, same
device, the caller's layout, and for xarray the dims in the input's order, the
coordinates (:func:`fit_coords`), the input's attrs and any provenance added by
the caller (its CF ``history`` line appended to the input's).

The layout rule for arrays (numpy, torch), which have no dim names:

- ``channel_axis=None`` (the default): 4-D is (T, C, H, W) and 3-D is
  (T, H, W).  Shapes that other tools' layouts give are refused rather than
  misread: a 4-D array whose last axis has length 1, 3 or 4 while its axis 1
  is longer than 4 (channels-last (T, H, W, C), as imageio, tifffile and
  napari give RGB video), and a 3-D array whose last axis has length 3 or 4
  while its axis 1 is longer than 4 (a single RGB(A) image (H, W, C), which is
  not a video).  Frames of at most 4 pixels are read as they come.
- ``channel_axis=k``: the array is 4-D with its channels on axis k (e.g. -1
  for (T, H, W, C)); the result has them there too.
- xarray: the dims say it; ``channel_axis`` must be None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._provenance import with_record
from ._validate import check_finite, check_volume, value_range

__all__ = ["Volume", "to_volume", "fit_coords"]

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
    channel_axis: int = 1  # where the input (numpy / torch, 4-D) keeps its channels
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
        elif self.channel_axis != 1:
            out = out.movedim(1, self.channel_axis)
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
        coords = fit_coords(self.template, sizes)
        attrs = with_record(self.template.attrs, provenance)
        da = xr.DataArray(array, dims=dims, coords=coords, name=self.template.name, attrs=attrs)
        return da.transpose(*self.template.dims)


def fit_coords(template, sizes: dict) -> dict:
    """``template``'s coordinates for a result with dim ``sizes``: every coordinate whose axes kept their length,
    and a dimension coordinate of y or x that changed length rescaled to the same field of view.

    A y/x axis of n evenly spaced pixels (step d, first centre c) that became m pixels covers the same extent:
    step d n / m, first centre c - d / 2 + (d n / m) / 2 (the pixel size follows super-resolution and pooling).
    The t axis keeps its frame interval: temporal operators blur frames but never resample them, so a t
    coordinate that changed length continues from its first value with the same step.  Coordinate attrs
    (``units``) are kept.
    """
    import xarray as xr

    from .io._ngff import regular_spacing

    coords = {}
    for key, coord in template.coords.items():
        if all(sizes.get(d) == template.sizes[d] for d in coord.dims):
            coords[key] = coord
            continue
        spacing = regular_spacing(coord.values) if coord.dims == (key,) and key in ("t", "y", "x") else None
        if spacing is None or coord.size < 2 or key not in sizes:
            continue
        first, step, n, m = *spacing, template.sizes[key], sizes[key]
        if key != "t":
            first, step = first - step / 2 + step * n / m / 2, step * n / m
        coords[key] = xr.Variable((key,), first + step * np.arange(m), coord.attrs)
    return coords


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


def to_volume(x, name: str = "x", *, finite: bool = True, with_range: bool = False, channel_axis=None) -> Volume:
    """Convert ``x`` to a :class:`Volume` holding a (T, C, H, W) floating tensor.

    ``channel_axis``: where a 4-D array keeps its channels (the module's layout rule).

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
        if channel_axis is not None:
            raise ValueError(f"{name} is an xarray.DataArray: its dims {tuple(x.dims)} say where the channels are; "
                             f"leave channel_axis=None (got {channel_axis!r})")
        data, had_c = _from_dataarray(x, name)
        vol = _from_numpy(data, name, had_c)
        vol.kind, vol.template, vol.attrs = "xarray", x, dict(x.attrs)
    elif isinstance(x, torch.Tensor):
        axis = _layout(tuple(x.shape), name, channel_axis)
        vol = _from_torch(x.movedim(axis, 1) if axis not in (None, 1) else x, name)
        vol.channel_axis = axis or 1
    elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        arr = np.asarray(x)
        axis = _layout(arr.shape, name, channel_axis)
        vol = _from_numpy(np.moveaxis(arr, axis, 1) if axis not in (None, 1) else arr, name, axis is not None)
        vol.channel_axis = axis or 1
    else:
        raise TypeError(f"{name} must be a numpy array, torch tensor, xarray.DataArray or zarr store, got {type(x).__name__}")
    check_volume(vol.tensor, name)
    if with_range:
        vol.value_range = value_range(vol.tensor, name)
    elif finite:
        check_finite(vol.tensor, name)
    return vol


_CHANNELS = (1, 3, 4)  # channel counts of grey, RGB and RGBA data


def _layout(shape: tuple, name: str, channel_axis) -> int | None:
    """The channel axis of an array of ``shape`` (a non-negative index), or None for (T, H, W): the layout rule."""
    ndim = len(shape)
    if ndim not in (3, 4):
        raise ValueError(f"{name} must be (T, C, H, W) or (T, H, W), got {ndim} dimension(s) (shape {shape})")
    if channel_axis is not None:
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int) or not -4 <= channel_axis < 4:
            raise ValueError(f"channel_axis must be None or an axis of a 4-D array (-4..3), got {channel_axis!r}")
        if ndim != 4:
            raise ValueError(f"{name} of shape {shape} has no room for a channel axis besides (T, H, W); "
                             f"a single image (H, W, C) is not a video: add a time axis ({name}[None])")
        return channel_axis % 4
    if ndim == 3 and shape[-1] in _CHANNELS[1:] and shape[1] > max(_CHANNELS):
        raise ValueError(f"{name} of shape {shape} looks like one RGB(A) image (H, W, C), not a video of "
                         f"{shape[0]} frames {shape[1]}x{shape[2]}: give a video as (T, H, W, C) with "
                         f"channel_axis=-1 or (T, C, H, W); a (T, H, W) video with frames {shape[2]} pixels wide "
                         "goes in as an xarray.DataArray with dims ('t', 'y', 'x')")
    if ndim == 4 and shape[-1] in _CHANNELS and shape[1] > max(_CHANNELS):
        raise ValueError(f"{name} of shape {shape} looks channels-last (T, H, W, C) but svimg reads 4-D arrays as "
                         f"(T, C, H, W): pass channel_axis=-1 (the result comes back channels-last), or "
                         f"channel_axis=1 if it really has {shape[1]} channels")
    return 1 if ndim == 4 else None


def _check_dtype(is_float: bool, dtype, name: str):
    if not is_float:
        convert = "x.float() / 255" if isinstance(dtype, torch.dtype) else "x.astype('float32') / 255"
        hint = ("take the real part or the magnitude first" if "complex" in str(dtype)
                else f"convert integers with {convert} (or the bit depth's maximum)")
        raise TypeError(f"{name} must hold real floating-point values in [0, 1] (float16/32/64), got dtype {dtype}; {hint}")


def _from_numpy(arr: np.ndarray, name: str, had_c: bool) -> Volume:
    _check_dtype(arr.dtype.kind == "f", arr.dtype, name)
    tensor = torch.from_numpy(np.array(arr, copy=True))  # own copy: the caller's array is never touched
    if not had_c:
        tensor = tensor[:, None]
    return Volume(tensor, "numpy", had_c, dtype=arr.dtype)


def _from_torch(x: torch.Tensor, name: str) -> Volume:
    _check_dtype(x.is_floating_point() and not x.is_complex(), x.dtype, name)
    had_c = x.ndim == 4
    tensor = x.detach() if had_c else x.detach()[:, None]
    return Volume(tensor, "torch", had_c, dtype=x.dtype, device=x.device)
