"""Writing (t, [c,] y, x) DataArrays: zarr (OME-NGFF 0.5), TIFF, .npy/.npz, and mp4/gif previews.

Every writer works on a temporary name in the target's folder that is renamed
onto the target only once complete (:func:`svimg.io._paths.atomic_target`),
and walks the data one frame-chunk at a time so lazy (dask) data is never
loaded whole (zarr, TIFF, .npy and mp4).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from ._meta import as_video_dataarray, dumps, encode, json_attrs
from ._ngff import image_metadata
from ._paths import atomic_target, file_format
from ._physical import tiff_resolution
from ._read import META_KEY

__all__ = ["save"]

DEFAULT_FPS = 8.0


def save(da, path, overwrite: bool = False, *, fps: float | None = None, progress: bool = False) -> Path:
    """Write a video ``da`` to ``path``; the format follows the name.

    ``.zarr``
        zarr v3 group, lossless: the pixels in array ``"0"`` chunked one frame
        per chunk with dimension names ("t", "c", "y", "x") (``xarray.open_zarr``
        reads it), every coordinate as an array of its own, ``da.attrs``
        (provenance included) as the array's attributes, and OME-NGFF 0.5
        ``multiscales`` metadata (axes typed time/channel/space; evenly spaced
        coordinates become the scale/translation) on the group.
    ``.tif`` / ``.tiff``
        one page per (t, c) plane, lossless; dims, coordinates, name and attrs
        in the JSON image description, and the pixel size (evenly spaced y/x
        coordinates in a length unit) as resolution tags in pixels per cm.
    ``.npy``
        the bare array (dims follow from its rank; coordinates and attrs are not kept).
    ``.npz``
        the array plus dims, coordinates, name and attrs (JSON), lossless.
    ``.mp4`` / ``.gif`` (also ``.mov``, ``.mkv``, ``.avi``, ``.m4v``: H.264 like mp4)
        8-bit previews (values clipped to [0, 1] then scaled by 255; integer
        data by its dtype's maximum); mp4 is H.264 (yuv420p, CRF 12) and needs
        an even height and width; 1 or 3 channels.  ``fps`` defaults to
        ``da.attrs["fps"]``, else 8.

    ``da`` is a DataArray with dims ("t", "c", "y", "x") or ("t", "y", "x") in
    any order, or a numpy array / torch tensor shaped (T, C, H, W) or (T, H, W).
    Attribute values are stored as JSON (numpy values become numbers/lists,
    other objects their ``repr``).  The write is atomic: an existing ``path``
    raises ``FileExistsError`` unless ``overwrite=True``, and on any error or
    interruption nothing is left behind.  Returns the path written.
    """
    da = as_video_dataarray(da, "da")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path).expanduser()
    fmt = file_format(path, reading=False)
    if fmt == "video":
        rate = fps if fps is not None else da.attrs.get("fps", DEFAULT_FPS)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (np.isfinite(rate) and rate > 0):
            raise ValueError(f"fps must be a positive number of frames per second, got {rate!r}")
        writer = _write_gif if path.suffix.lower() == ".gif" else _write_mp4
        _check_preview(da, path)
        with atomic_target(path, overwrite) as tmp:
            writer(da, tmp, rate, progress)
        return path
    write = {"zarr": _write_zarr, "tiff": _write_tiff, "npy": _write_npy, "npz": _write_npz}[fmt]
    with atomic_target(path, overwrite) as tmp:
        write(da, tmp, progress)
    return path


def frame_blocks(da: xr.DataArray, progress: bool = False, desc: str = "writing"):
    """Yield (start, stop, numpy block) over the t axis: dask data chunk by chunk, numpy data frame by frame."""
    from tqdm.auto import tqdm

    data = da.data
    sizes = data.chunks[0] if hasattr(data, "compute") else (1,) * da.sizes["t"]
    with tqdm(total=da.sizes["t"], desc=desc, unit="frame", disable=not progress, leave=False) as bar:
        start = 0
        for n in sizes:
            yield start, start + n, np.asarray(data[start : start + n])
            start += n
            bar.update(n)


# ---------------------------------------------------------------- lossless formats

def _write_zarr(da: xr.DataArray, tmp: Path, progress: bool) -> None:
    import zarr

    root = zarr.open_group(zarr.storage.LocalStore(str(tmp)), mode="w-", zarr_format=3)
    image = root.create_array("0", shape=da.shape, chunks=(1, *da.shape[1:]), dtype=da.dtype,
                              dimension_names=da.dims, fill_value=0)
    for start, stop, block in frame_blocks(da, progress, "writing zarr"):
        image[start:stop] = block
    attrs = json_attrs(da.attrs)
    extra = [str(k) for k in da.coords if k not in da.dims]
    if extra:
        attrs["coordinates"] = " ".join(extra)  # CF / xarray: these arrays are coordinates, not data
    image.attrs.update(attrs)
    for key, coord in da.coords.items():
        if str(key) == "0":
            raise ValueError("a coordinate named '0' would clash with the image array of the zarr store")
        values = np.asarray(coord.values)
        text = values.dtype.kind in "OUST"  # zarr v3's variable-length UTF-8 string type
        arr = root.create_array(str(key), shape=values.shape, dtype=str if text else values.dtype,
                                dimension_names=coord.dims, chunks=values.shape if values.ndim else "auto")
        arr[...] = values
        arr.attrs.update(json_attrs(coord.attrs))
    root.attrs["ome"] = image_metadata(da)


def _write_tiff(da: xr.DataArray, tmp: Path, progress: bool) -> None:
    import tifffile

    H, W = da.sizes["y"], da.sizes["x"]
    planes = da.size // (H * W)
    if planes > 1 and W == 1 and (H == 1 or da.dtype == bool):  # tifffile mis-shapes these pages
        raise ValueError(f"TIFF cannot hold {planes} planes of {H}x{W} {da.dtype} pixels (tifffile cannot write or "
                         "read them back as planes); save as .zarr, .npy or .npz")

    def planes():
        for _, _, block in frame_blocks(da, progress, "writing tiff"):
            yield from block.reshape(-1, *block.shape[-2:])

    axes = "".join(d.upper() for d in da.dims)
    big = da.nbytes > 2**32 - 2**25  # classic TIFF offsets are 32-bit
    with tifffile.TiffWriter(tmp, bigtiff=big) as tw:
        tw.write(planes(), shape=da.shape, dtype=da.dtype, photometric="minisblack",
                 metadata={"axes": axes, META_KEY: encode(da)}, **tiff_resolution(da))


def _write_npy(da: xr.DataArray, tmp: Path, progress: bool) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=da.dtype, shape=da.shape)
    for start, stop, block in frame_blocks(da, progress, "writing npy"):
        out[start:stop] = block
    out.flush()
    del out


def _write_npz(da: xr.DataArray, tmp: Path, progress: bool) -> None:
    data = np.concatenate([b for _, _, b in frame_blocks(da, progress, "writing npz")])
    with open(tmp, "wb") as f:
        np.savez_compressed(f, data=data, **{META_KEY: np.array(dumps(encode(da)))})


# ---------------------------------------------------------------- previews

def _check_preview(da: xr.DataArray, path: Path) -> None:
    channels = da.sizes.get("c", 1)
    if channels not in (1, 3):
        raise ValueError(f"{path.suffix} previews need 1 or 3 channels, got {channels}; save as .zarr or .tif instead")
    if path.suffix.lower() != ".gif" and (da.sizes["y"] % 2 or da.sizes["x"] % 2):
        raise ValueError(
            f"{path.suffix} (H.264, yuv420p) needs an even height and width, got {da.sizes['y']}x{da.sizes['x']}; "
            "crop one row/column or save as .gif, .tif or .zarr"
        )


def to_uint8(block: np.ndarray) -> np.ndarray:
    """8-bit display values: floats clipped to [0, 1] times 255 (rounded), integers rescaled by their dtype's maximum."""
    if block.dtype == np.uint8:
        return block
    if block.dtype.kind in "iu":
        block = block.astype(np.float64) / np.iinfo(block.dtype).max
    return np.round(np.clip(np.asarray(block, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def _frames_hwc(da: xr.DataArray, progress: bool, desc: str):
    """8-bit frames (H, W) for one channel, (H, W, 3) for three."""
    for _, _, block in frame_blocks(da, progress, desc):
        block = to_uint8(block)
        for frame in block:
            if frame.ndim == 3:
                frame = frame[0] if frame.shape[0] == 1 else frame.transpose(1, 2, 0)
            yield np.ascontiguousarray(frame)


def _write_mp4(da: xr.DataArray, tmp: Path, fps: float, progress: bool) -> None:
    import imageio_ffmpeg

    gray = da.sizes.get("c", 1) == 1
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (da.sizes["x"], da.sizes["y"]), fps=fps, codec="libx264", pix_fmt_in="gray" if gray else "rgb24",
        pix_fmt_out="yuv420p", quality=None, output_params=["-crf", "12"], macro_block_size=1,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    try:
        for frame in _frames_hwc(da, progress, "writing mp4"):
            writer.send(frame)
    finally:
        writer.close()


def _write_gif(da: xr.DataArray, tmp: Path, fps: float, progress: bool) -> None:
    import imageio.v3 as iio

    frames = np.stack(list(_frames_hwc(da, progress, "writing gif")))
    iio.imwrite(tmp, frames, extension=".gif", duration=1000.0 / fps, loop=0)
