"""File formats by name, and atomic writes (temporary name in the same folder, then rename)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path

__all__ = ["file_format", "check_target", "atomic_target", "VIDEO_SUFFIXES", "TIFF_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


READ_ONLY_SUFFIXES = (".webm",)  # VP8/VP9: read through imageio-ffmpeg, never written


def file_format(path: Path, *, reading: bool) -> str:
    """"zarr" | "npy" | "npz" | "tiff" | "video" (mp4, avi, mov, mkv, webm, m4v, gif) from the path's name.

    When ``reading``, a folder holding zarr metadata counts as zarr whatever its name; when writing, a
    read-only format (.webm) raises, and the error lists the formats that can be written.
    """
    suffix = path.suffix.lower()
    videos = VIDEO_SUFFIXES if reading else tuple(s for s in VIDEO_SUFFIXES if s not in READ_ONLY_SUFFIXES)
    known = ".zarr, .npy, .npz, .tif/.tiff, " + ", ".join(videos)
    if not reading and suffix in READ_ONLY_SUFFIXES:
        raise ValueError(f"{str(path)!r}: {suffix} can be read but not written; write one of: {known}")
    if suffix == ".zarr" or (reading and path.is_dir() and any((path / m).exists() for m in _ZARR_MARKERS)):
        return "zarr"
    if suffix in (".npy", ".npz"):
        return suffix[1:]
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in videos:
        return "video"
    raise ValueError(f"cannot tell the format of {str(path)!r} from its name; use one of: {known}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_target(path: Path, overwrite: bool) -> None:
    """Raise unless ``path`` can be written: ``FileExistsError`` when it exists (without ``overwrite``),
    ``FileNotFoundError`` when its folder is missing, ``PermissionError`` when the folder refuses a new file."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    try:
        with tempfile.TemporaryFile(dir=path.parent):  # a nameless probe file, gone when closed
            pass
    except OSError as err:
        raise PermissionError(
            f"cannot write {str(path)!r}: folder {str(path.parent)!r} is not writable ({err.strerror or err})"
        ) from None


@contextlib.contextmanager
def atomic_target(path: Path, overwrite: bool):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary name keeps ``path``'s suffix (writers such as ffmpeg choose the
    container by extension).  An existing ``path`` raises ``FileExistsError``
    unless ``overwrite``; then it is replaced only after the new content is
    complete.  On any exception, KeyboardInterrupt included, the temporary is
    removed and ``path`` is left as it was.  :func:`check_target` runs first.
    """
    check_target(path, overwrite)
    tmp = path.with_name(f".svimg-tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        _commit(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _commit(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``: one rename for files, rename-aside-then-rename when a folder is involved."""
    if not (path.exists() or path.is_symlink()):
        os.rename(tmp, path)
        return
    if tmp.is_file() and path.is_file():
        os.replace(tmp, path)
        return
    old = path.with_name(f".svimg-old-{secrets.token_hex(4)}-{path.name}")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    _remove(old)
