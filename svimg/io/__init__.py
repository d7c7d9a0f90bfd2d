"""Reading and writing videos: zarr (OME-NGFF), TIFF stacks, .npy/.npz and video files.

``load(path, frames=None, size=None)``  -> float32 DataArray (t, [c,] y, x) in [0, 1]
``save(da, path, overwrite=False)``      zarr / TIFF / npy / npz (lossless), mp4 / gif previews; atomic
``as_dataarray(path_or_zarr)``           lazy DataArray of a store (how the functional API accepts stores)
``center_crop_resize(frames, size)``     the paper's preprocessing: centre square crop, resize
"""

from ._read import as_dataarray, load
from ._resize import center_crop_resize
from ._write import save

__all__ = ["load", "save", "as_dataarray", "center_crop_resize"]
