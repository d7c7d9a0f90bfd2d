"""Property tests of svimg.io: random round trips, and the readers on randomly damaged files.

Round trips: random shapes (T = 1 included, with or without a channel axis), dtypes
(float16/32/64, uint8, uint16, bool) and lossless formats (.zarr, .npy, .npz, .tif): ``load(save(v))``
gives v's values as float32 in [0, 1] (integers divided by their dtype's maximum), the same dims, and
any frame selection equals slicing.  (TIFF refuses several planes of width 1 that are 1x1 or boolean:
tifffile cannot write or read those back as planes.)

Damaged files: hypothesis flips, truncates or inserts bytes of a valid small .npy, .tif, .mp4, a
zarr chunk and a zarr array's metadata.  ``svimg.io.load`` followed by reading every value may only
give a video or raise ValueError / TypeError / OSError with a one-line message naming the file;
never another exception, never a hang (each example runs under a 30 s alarm).

Default run: ``max_examples`` 20 per property; ``pytest -m slow`` runs the "long" profile.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import svimg.io

settings.register_profile("svimg-io-ci", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("svimg-io-long", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILES = [pytest.param("svimg-io-ci", id="ci"), pytest.param("svimg-io-long", id="long", marks=pytest.mark.slow)]
ALLOWED = (ValueError, TypeError, OSError)


def fuzz(profile: str, *strategies):
    """Run the decorated property now under hypothesis with ``profile``'s settings."""
    def run(prop):
        settings(settings.get_profile(profile))(given(*strategies)(prop))()
    return run


class Hang(BaseException):
    """Raised by :func:`time_limit`; a BaseException, so no ``except Exception`` in a reader swallows it."""


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise :class:`Hang` instead of hanging."""
    def expire(signum, frame):
        raise Hang(f"no result after {seconds} s: the reader hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- round trips

DTYPES = ["float16", "float32", "float64", "uint8", "uint16", "bool"]


@st.composite
def videos(draw) -> xr.DataArray:
    T, H, W = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    C = draw(st.sampled_from([None, 1, 2, 3]))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = (T, H, W) if C is None else (T, C, H, W)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        data = rng.random(shape).astype(dtype)
    elif dtype.kind == "b":
        data = rng.random(shape) < 0.5
    else:
        data = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    dims = ("t", "y", "x") if C is None else ("t", "c", "y", "x")
    return xr.DataArray(data, dims=dims)


def unit_float(data: np.ndarray) -> np.ndarray:
    """What load gives back for stored ``data``: float32, integers divided by their dtype's maximum."""
    if data.dtype.kind in "iu":
        return data.astype(np.float32) * np.float32(1.0 / np.iinfo(data.dtype).max)
    return data.astype(np.float32)


@pytest.mark.parametrize("profile", PROFILES)
def test_lossless_round_trips(profile):
    @fuzz(profile, videos(), st.sampled_from(["zarr", "npy", "npz", "tif"]),
          st.tuples(st.none() | st.integers(-5, 5), st.none() | st.integers(-5, 5)))
    def check(da, ext, bounds):
        with tempfile.TemporaryDirectory() as folder:
            H, W = da.sizes["y"], da.sizes["x"]
            if ext == "tif" and da.size > H * W and W == 1 and (H == 1 or da.dtype == bool):
                with pytest.raises(ValueError, match=rf"TIFF cannot hold {da.size // H} planes of {H}x1"):
                    svimg.io.save(da, Path(folder) / "v.tif")  # a limit of tifffile, refused up front
                assert list(Path(folder).iterdir()) == []
                return
            path = svimg.io.save(da, Path(folder) / f"v.{ext}")
            loaded = svimg.io.load(path)
            assert loaded.dims == da.dims and loaded.dtype == np.float32
            np.testing.assert_array_equal(loaded.values, unit_float(da.values))
            sel = slice(*bounds)
            if len(range(da.sizes["t"])[sel]):
                np.testing.assert_array_equal(svimg.io.load(path, frames=sel).values, unit_float(da.values[sel]))
            else:
                with pytest.raises(ValueError, match="selects no frames"):
                    svimg.io.load(path, frames=sel)
            assert sorted(p.name for p in Path(folder).iterdir()) == [f"v.{ext}"]  # no temporaries left


# ---------------------------------------------------------------- damaged files

mutations = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20)),
    st.tuples(st.just("insert"), st.integers(0, 2**20), st.binary(min_size=1, max_size=32)),
)


def mutate(data: bytes, mutation) -> bytes:
    kind = mutation[0]
    if kind == "flip":
        out = bytearray(data)
        for pos, value in mutation[1]:
            if out:
                out[pos % len(out)] = value
        return bytes(out)
    if kind == "truncate":
        return data[: mutation[1] % (len(data) + 1)]
    pos = mutation[1] % (len(data) + 1)
    return data[:pos] + mutation[2] + data[pos:]


def _smooth_video(channels: int | None) -> xr.DataArray:
    t, y, x = np.meshgrid(np.arange(4), np.arange(16), np.arange(16), indexing="ij")
    frames = (0.5 + 0.4 * np.sin(0.3 * x + 0.2 * y + 0.5 * t)).astype(np.float32)
    if channels is None:
        return xr.DataArray(frames, dims=("t", "y", "x"))
    return xr.DataArray(np.stack([frames] * channels, axis=1) * np.linspace(0.5, 1, channels)[:, None, None],
                        dims=("t", "c", "y", "x"))


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    """name -> (store or file to load, file inside it to damage)."""
    folder = tmp_path_factory.mktemp("valid")
    gray, rgb = _smooth_video(None), _smooth_video(3)
    files = {}
    for name, da in (("v.npy", gray), ("v.tif", rgb), ("v.mp4", rgb)):
        path = svimg.io.save(da, folder / name)
        files[name] = (path, path)
    store = svimg.io.save(gray, folder / "v.zarr")
    files["zarr chunk"] = (store, store / "0" / "c" / "1" / "0" / "0")
    files["zarr metadata"] = (store, store / "0" / "zarr.json")
    for _, (target, damaged) in files.items():
        assert damaged.is_file()
        svimg.io.load(target).values  # noqa: B018 (valid before damage)
    return files


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", ["v.npy", "v.tif", "v.mp4", "zarr chunk", "zarr metadata"])
def test_damaged_files_give_a_video_or_one_clear_error(name, profile, valid_files):
    target, damaged = valid_files[name]
    original = damaged.read_bytes()

    @fuzz(profile, mutations)
    def check(mutation):
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / target.name
            if target.is_dir():
                shutil.copytree(target, copy)
            (copy / damaged.relative_to(target) if target.is_dir() else copy).write_bytes(mutate(original, mutation))
            try:
                with time_limit(30):
                    da = svimg.io.load(copy)
                    values = np.asarray(da.values)
            except Hang as hang:
                raise AssertionError(str(hang)) from None  # an Exception: hypothesis shrinks and reports the input
            except ALLOWED as err:
                message = str(err)
                assert message and "\n" not in message, repr(message)
                assert str(copy) in message, f"the error does not name the file: {type(err).__name__}: {message}"
            else:
                assert da.dims in (("t", "y", "x"), ("t", "c", "y", "x")) and values.dtype == np.float32
