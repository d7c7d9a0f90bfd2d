"""Reading videos, image stacks and arrays into (t, [c,] y, x) DataArrays.

Zarr stores, TIFF stacks and .npy files are opened lazily (dask, one chunk per
frame or per stored chunk); video files and .npz are decoded into memory,
video files only up to the last frame asked for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import warnings
import weakref
from pathlib import Path

import numpy as np
import xarray as xr

from .._validate import check_positive_int
from ._meta import FRAME_DIMS, VIDEO_DIMS, WINDOWED_RUN_ATTR, coord_values, decode
from ._ngff import read_image_metadata
from ._paths import file_format
from ._physical import tiff_coords
from ._resize import center_crop_resize

__all__ = ["load", "as_dataarray", "frame_selection", "select_frames"]

# tifffile logs what it finds wrong in a damaged file; unless the application configures logging, stay quiet:
# the reader raises its own error naming the file.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

META_KEY = "svimg_metadata"  # the JSON document svimg writes into .npz files and TIFF descriptions
_DIM_ALIASES = {"t": "t", "time": "t", "c": "c", "channel": "c", "ch": "c", "z": "z", "y": "y", "x": "x"}
_TIFF_AXES = {"T": "t", "C": "c", "S": "c", "Z": "z", "Y": "y", "X": "x", "I": "t", "Q": "t"}
_DEFAULT_DIMS = {2: ("y", "x"), 3: FRAME_DIMS, 4: VIDEO_DIMS, 5: ("t", "c", "z", "y", "x")}


def frame_selection(frames) -> tuple[slice, int | None]:
    """``frames`` as (slice, required count): None = all, int n = the first n, (start, stop) or a slice."""
    if frames is None:
        return slice(None), None
    if isinstance(frames, numbers.Integral) and not isinstance(frames, bool):
        if frames < 1:
            raise ValueError(f"frames must be a positive frame count, a (start, stop) pair or a slice, got {frames}")
        return slice(0, int(frames)), int(frames)
    if isinstance(frames, slice):
        if frames.step == 0:
            raise ValueError("frames slice step cannot be zero")
        return frames, None
    if isinstance(frames, (tuple, list)) and len(frames) == 2 and all(
        v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)) for v in frames
    ):
        return slice(*frames), None
    raise TypeError(f"frames must be None, a frame count (int), a (start, stop) pair or a slice, got {frames!r}")


def select_frames(da: xr.DataArray, frames, source: str, *, selected: bool = False) -> xr.DataArray:
    """``da``'s ``frames`` (:func:`frame_selection`), or an error naming ``source`` when fewer than the count asked
    for, or none, are there.  ``selected``: ``da`` already holds the selection (a video decoded frame by frame)."""
    sel, count = frame_selection(frames)
    da = da if selected else da.isel(t=sel)
    if count is not None and da.sizes["t"] < count:
        raise ValueError(f"frames={count} asks for more frames than {source} holds ({da.sizes['t']})")
    if da.sizes["t"] == 0:
        raise ValueError(f"frames={frames!r} selects no frames of {source}")
    return da


def load(path, frames=None, size: int | None = None) -> xr.DataArray:
    """Read a video, image stack or array file as a float32 DataArray in [0, 1].

    Parameters
    ----------
    path : str or os.PathLike
        A zarr store (``.zarr`` or any folder with zarr metadata; OME-NGFF axes
        are honoured), a TIFF stack (``.tif``/``.tiff``), ``.npy``/``.npz``, or a
        video (``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm``, ``.m4v``, ``.gif``).
    frames : None, int, (start, stop) or slice
        Which frames to keep: all, the first ``n``, ``range(start, stop)``, or any slice.
    size : int, optional
        Centre-crop every frame to a square and resize it to ``size`` x ``size``
        (:func:`svimg.io.center_crop_resize`, the paper's preprocessing).

    Returns
    -------
    xarray.DataArray
        dims ("t", "c", "y", "x"), or ("t", "y", "x") for single-channel data
        (a video whose colour channels are all equal is single-channel).
        Integer data is divided by its dtype's maximum (uint8 by 255, uint16
        by 65535), booleans become 0/1, floats are cast to float32 unscaled.
        Zarr, TIFF and .npy data stay lazy (dask) until computed.  Coordinates
        and attrs written by :func:`svimg.io.save` come back; a video's frame
        rate is kept as ``attrs["fps"]`` and its codec as ``attrs["codec"]`` (a
        lossy one sets the least noise level ``noise_std="auto"`` gives,
        :func:`svimg.sampling.noise_level.noise_floor`); a TIFF's pixel size and frame interval
        (ImageJ, OME-XML, resolution tags: :mod:`svimg.io._physical`) become
        t/y/x coordinates with ``units``.  A z axis of length 1 is dropped and
        a single image becomes one frame.
    """
    path = _existing(path)
    sel, _ = frame_selection(frames)
    fmt = file_format(path, reading=True)
    with reading(str(path), fmt):
        if fmt == "video":
            da = _read_video(path, sel)
        else:
            da = {"zarr": _read_zarr_path, "npy": _read_npy, "npz": _read_npz, "tiff": _read_tiff}[fmt](path)
    da = select_frames(da, frames, repr(str(path)), selected=fmt == "video")
    da = _to_unit_float(da, str(path))
    _warn_if_unfinished(da, path)
    if size is not None:
        da = _crop_resize(da, size)
    return da


def _warn_if_unfinished(da: xr.DataArray, path) -> None:
    """Warn when ``path`` is a windowed restoration whose run has not finished (its later frames are not restored)."""
    record = da.attrs.get(WINDOWED_RUN_ATTR)
    if isinstance(record, dict) and not record.get("complete", True):
        warnings.warn(
            f"{str(path)!r} is an unfinished windowed restoration ({record.get('windows_done', '?')} window(s) done): "
            "frames past the last finished window are not restored; run the same command again to resume",
            UserWarning,
            stacklevel=3,
        )


def as_dataarray(x) -> xr.DataArray:
    """A zarr array/group or a file path as a lazy float32 DataArray in [0, 1] (see :func:`load`).

    This is how the functional API (``svimg.forward_op``, ``cg_solve``,
    ``sample``, ...) accepts stores directly: ``svimg.forward_op("clip.zarr", op)``
    returns a DataArray.
    """
    if isinstance(x, (str, os.PathLike)):
        return load(x)
    if type(x).__module__.startswith("zarr"):
        return _to_unit_float(_read_zarr(x), repr(x))
    raise TypeError(f"expected a path or a zarr array/group, got {type(x).__name__}")


def _summary(err: BaseException) -> str:
    """A library error as one short line: its first line (and its last, when it spans several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return text if len(text) <= 300 else text[:297] + "..."


def _unreadable(label: str, fmt: str, err: Exception) -> ValueError:
    return ValueError(
        f"cannot read {label} as {fmt}: {_summary(err)} ({type(err).__name__}); "
        f"the file is truncated, corrupt or not a valid {fmt} file"
    )


@contextlib.contextmanager
def reading(path: str, fmt: str):
    """Re-raise what a format library throws on a bad file as one ``ValueError`` naming ``path``.

    Errors that already name the file on their first line (svimg's own checks,
    ``FileNotFoundError``/``PermissionError`` from the OS) pass unchanged.
    """
    try:
        yield
    except MemoryError:
        raise
    except Exception as err:
        first = (str(err).splitlines() or [""])[0]
        if isinstance(err, (ValueError, TypeError, OSError)) and path in first:
            raise
        raise _unreadable(repr(path), fmt, err) from err


class _Guarded:
    """A stored array (zarr, TIFF pages) whose reads fail with an error naming ``label``: lazy chunks
    decoded later by dask raise a ``ValueError`` about the file, not the codec's own exception."""

    def __init__(self, arr, label: str, fmt: str):
        self.arr, self.label, self.fmt = arr, label, fmt
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim

    def __getitem__(self, key):
        try:
            return self.arr[key]
        except MemoryError:
            raise
        except Exception as err:
            raise _unreadable(self.label, self.fmt, err) from err


def _lazy(arr, label: str, fmt: str):
    """A dask array over a chunked stored array: one dask chunk per stored chunk, reads guarded."""
    import dask.array

    return dask.array.from_array(_Guarded(arr, label, fmt), chunks=arr.chunks, name=False, asarray=True)


def _existing(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"no such file or folder: {str(p)!r}")
    return p


def _to_unit_float(da: xr.DataArray, source: str) -> xr.DataArray:
    """float32 in [0, 1]: integers divided by their dtype's maximum, booleans as 0/1, floats cast (lazily)."""
    dtype = da.dtype
    if dtype.kind in "iu":
        data = da.data.astype(np.float32) * np.float32(1.0 / np.iinfo(dtype).max)
    elif dtype.kind in "bf":
        data = da.data.astype(np.float32)
    else:
        raise TypeError(f"{source} holds {dtype} data; expected integers, booleans or real floats")
    return da.copy(data=data)


def _crop_resize(da: xr.DataArray, size) -> xr.DataArray:
    size = check_positive_int(size, "size")
    data = da.data
    if hasattr(data, "map_blocks"):  # dask: whole frames per block, resized block by block
        data = data.rechunk({data.ndim - 2: -1, data.ndim - 1: -1})
        out = data.map_blocks(center_crop_resize, size, chunks=data.chunks[:-2] + ((size,), (size,)), dtype=np.float32)
    else:
        out = center_crop_resize(data, size)
    # the pixel coordinates follow: the central square's, rescaled to size x size pixels over the same extent
    from .._convert import fit_coords

    side = min(da.sizes["y"], da.sizes["x"])
    square = da.isel(y=slice((da.sizes["y"] - side) // 2, None), x=slice((da.sizes["x"] - side) // 2, None))
    square = square.isel(y=slice(0, side), x=slice(0, side))
    coords = fit_coords(square, {**square.sizes, "y": size, "x": size})
    return xr.DataArray(out, dims=da.dims, coords=coords, name=da.name, attrs=da.attrs)


def _video(data, dims, coords=None, attrs=None, name=None, source="data") -> xr.DataArray:
    """Arrange ``data`` with named ``dims`` as (t, [c,] y, x): squeeze length-1 duplicate or z axes, add t if missing."""
    dims = list(dims)
    coords = dict(coords or {})
    for d in set(dims):
        while dims.count(d) > 1:
            ones = [i for i, dd in enumerate(dims) if dd == d and data.shape[i] == 1]
            if not ones:
                raise ValueError(f"{source} has several {d!r} axes longer than 1 (shape {data.shape}, axes {dims})")
            data = data[tuple(0 if i == ones[0] else slice(None) for i in range(data.ndim))]
            del dims[ones[0]]
    if "z" in dims:
        i = dims.index("z")
        if data.shape[i] != 1:
            raise ValueError(f"{source} is a 3-D volume (z of length {data.shape[i]}), not a video; select one plane")
        data = data[tuple(0 if j == i else slice(None) for j in range(data.ndim))]
        del dims[i]
        coords = {k: v for k, v in coords.items() if "z" not in v[0]}
    if "t" not in dims:
        data, dims = data[None], ["t", *dims]
    order = VIDEO_DIMS if "c" in dims else FRAME_DIMS
    if sorted(dims) != sorted(order):
        raise ValueError(f"{source} has axes {tuple(dims)}; expected a video with axes t, (c,) y, x")
    da = xr.DataArray(data, dims=tuple(dims), coords=coords, name=name, attrs=attrs or {})
    return da.transpose(*order)


# ---------------------------------------------------------------- video files

def _read_video(path: Path, sel: slice) -> xr.DataArray:
    """Decode with ffmpeg (rgb24), stopping after the last frame ``sel`` needs when its bounds are non-negative."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        W, H = meta["size"]
        streaming = all(v is None or v >= 0 for v in (sel.start, sel.stop)) and (sel.step or 1) > 0
        keep = range(sel.start or 0, sel.stop if sel.stop is not None else 2**62, sel.step or 1) if streaming else None
        frames = []
        for i, raw in enumerate(reader):
            if streaming and i >= keep.stop:
                break
            if not streaming or i in keep:
                frames.append(np.frombuffer(raw, np.uint8).reshape(H, W, 3))
    finally:
        reader.close()
    if not streaming:
        frames = frames[sel]
    if not frames:
        return xr.DataArray(np.zeros((0, H, W), np.uint8), dims=FRAME_DIMS)
    rgb = np.stack(frames)
    attrs = {"fps": float(meta["fps"])} if meta.get("fps") else {}
    if meta.get("codec"):
        attrs["codec"] = str(meta["codec"])  # what decoded these frames: a lossy one sets "auto"'s noise floor
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
        return xr.DataArray(np.ascontiguousarray(rgb[..., 0]), dims=FRAME_DIMS, attrs=attrs)
    return xr.DataArray(np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)), dims=VIDEO_DIMS, attrs=attrs)


# ---------------------------------------------------------------- numpy files

def _read_npy(path: Path) -> xr.DataArray:
    import dask.array

    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"{str(path)!r} holds an array of shape {arr.shape}; expected (T, C, H, W), (T, H, W) or (H, W)")
    chunks = (1,) + arr.shape[1:] if arr.ndim > 2 else arr.shape
    return _video(dask.array.from_array(arr, chunks=chunks), _DEFAULT_DIMS[arr.ndim], source=repr(str(path)))


def _read_npz(path: Path) -> xr.DataArray:
    with np.load(path, allow_pickle=False) as z:
        if META_KEY in z.files:
            return decode(json.loads(str(z[META_KEY])), z["data"]).transpose(*_order(z["data"].ndim))
        if len(z.files) != 1:
            raise ValueError(f"{str(path)!r} holds arrays {z.files}; expected one array (or an svimg.io.save file)")
        arr = z[z.files[0]]
    if arr.ndim not in (2, 3, 4):
        raise ValueError(f"{str(path)!r} holds an array of shape {arr.shape}; expected (T, C, H, W), (T, H, W) or (H, W)")
    return _video(arr, _DEFAULT_DIMS[arr.ndim], source=repr(str(path)))


def _order(ndim: int) -> tuple:
    return VIDEO_DIMS if ndim == 4 else FRAME_DIMS


# ---------------------------------------------------------------- TIFF

def _read_tiff(path: Path) -> xr.DataArray:
    """First series of a TIFF, lazily through tifffile's zarr view; svimg's own JSON metadata restores dims/coords/attrs."""
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        page = series.keyframe
        stored = sum(page.databytecounts)
        if page.compression == 1 and 8 * stored < page.size * page.bitspersample:  # uncompressed: all samples stored
            raise ValueError(f"{str(path)!r} is corrupt: a TIFF page declares {page.shape} {page.dtype} values "
                             f"({page.size * page.bitspersample // 8} bytes) but stores {stored} bytes")
        pages = zarr.open(series.aszarr(), mode="r")
    except Exception:
        tif.close()
        raise
    weakref.finalize(pages, tif.close)  # the file stays open while the lazy array is alive
    data = _lazy(pages, repr(str(path)), "tiff")
    shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
    if META_KEY in shaped:
        return decode(shaped[META_KEY], data).transpose(*_order(data.ndim))
    dims = [_TIFF_AXES.get(a) for a in series.axes]
    if None in dims:
        raise ValueError(f"{str(path)!r} has TIFF axes {series.axes!r}; svimg reads T/Z/I/Q (frames), C/S, Y, X")
    if "t" not in dims and "z" in dims:
        dims[dims.index("z")] = "t"  # a plain z-stack: its planes are the frames
    return _video(data, dims, tiff_coords(tif, dims, data.shape), source=repr(str(path)))


# ---------------------------------------------------------------- zarr

def _read_zarr_path(path: Path) -> xr.DataArray:
    import zarr

    return _read_zarr(zarr.open(str(path), mode="r"), repr(str(path)))


def _array_dims(arr) -> tuple:
    names = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
    if names and all(n is not None and str(n).lower() in _DIM_ALIASES for n in names):
        return tuple(_DIM_ALIASES[str(n).lower()] for n in names)
    if arr.ndim not in _DEFAULT_DIMS:
        raise ValueError(f"zarr array of shape {arr.shape} has no usable dimension names; expected 2 to 5 axes")
    return _DEFAULT_DIMS[arr.ndim]


def _ngff_dims(meta: dict) -> list:
    """Map NGFF axes to t/c/z/y/x by type (names when a type is missing): the last two space axes are y, x."""
    names, types = [n.lower() for n in meta["axes"]], meta["types"]
    types = [t or {"t": "time", "time": "time", "c": "channel", "channel": "channel"}.get(n, "space")
             for n, t in zip(names, types)]
    space = [i for i, t in enumerate(types) if t == "space"]
    if len(space) not in (2, 3):
        raise ValueError(f"OME-NGFF image with axes {meta['axes']}: expected 2 or 3 space axes")
    dims = []
    for i, t in enumerate(types):
        if t == "time":
            dims.append("t")
        elif t == "channel":
            dims.append("c")
        elif t == "space":
            dims.append(("z", "y", "x")[3 - len(space) + space.index(i)])
        else:
            raise ValueError(f"OME-NGFF axis {meta['axes'][i]!r} has type {t!r}; svimg reads time, channel and space axes")
    return dims


def _read_zarr(node, source: str = "zarr store") -> xr.DataArray:
    """A zarr array, an NGFF image group, or a group whose highest-rank array is the only one of its rank
    (smaller arrays along its dimensions become coordinates)."""
    import zarr

    coords, name = {}, None
    if isinstance(node, zarr.Array):
        arr, dims = node, list(_array_dims(node))
    elif isinstance(node, zarr.Group):
        meta = read_image_metadata(dict(node.attrs))
        if meta is not None:
            arr, dims, name = node[meta["path"]], _ngff_dims(meta), meta["name"]
            if arr.ndim != len(dims):
                raise ValueError(f"{source}: NGFF lists {len(dims)} axes but array {meta['path']!r} has {arr.ndim}")
        else:
            arrays = [a for _, a in node.arrays()]
            top = max((a.ndim for a in arrays), default=0)
            images = [a for a in arrays if a.ndim == top >= 2]
            if len(images) != 1:
                listed = sorted(k for k, _ in node.arrays())
                raise ValueError(f"{source} holds arrays {listed}; expected an OME-NGFF image or exactly one image array")
            arr = images[0]
            dims = list(_array_dims(arr))
        coords = _zarr_coords(node, arr, dims)
        if meta is not None:
            _ngff_coords(meta, dims, arr.shape, coords)
    else:
        raise TypeError(f"expected a zarr array or group, got {type(node).__name__}")
    attrs = {k: v for k, v in arr.attrs.items() if k not in ("_ARRAY_DIMENSIONS", "coordinates")}
    return _video(_lazy(arr, source, "zarr"), dims, coords, attrs, name, source)


def _zarr_coords(group, image, dims) -> dict:
    """Smaller arrays of ``group`` whose named dimensions are among ``dims`` (lengths matching), as coordinates."""
    coords = {}
    sizes = dict(zip(dims, image.shape))
    for key, arr in group.arrays():
        if arr.path == image.path or arr.ndim >= image.ndim:
            continue
        cdims = tuple(_DIM_ALIASES.get(str(n).lower(), str(n)) for n in (getattr(arr.metadata, "dimension_names", None)
                                                                          or arr.attrs.get("_ARRAY_DIMENSIONS") or ()))
        if len(cdims) != arr.ndim or any(sizes.get(d) != n for d, n in zip(cdims, arr.shape)):
            continue
        attrs = {k: v for k, v in arr.attrs.items() if k != "_ARRAY_DIMENSIONS"}
        coords[key] = (cdims, coord_values(arr[...]), attrs)
    return coords


def _ngff_coords(meta: dict, dims: list, shape: tuple, coords: dict) -> None:
    """Add coordinates ``translation + scale * index`` (with units) for axes whose NGFF transform is not the identity."""
    for i, d in enumerate(dims):
        scale, shift, unit = meta["scale"][i], meta["translation"][i], meta["units"][i]
        if d == "c" or d in coords or (scale == 1.0 and shift == 0.0):
            continue
        coords[d] = ((d,), shift + scale * np.arange(shape[i]), {"units": unit} if unit else {})
