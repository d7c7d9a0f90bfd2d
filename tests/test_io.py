"""svimg.io: lossless round trips, video previews, OME-NGFF, lazy reads, frame selection, atomic writes."""

import json
import os

import dask.array
import numpy as np
import pytest
import tifffile
import torch
import xarray as xr
import zarr

import svimg
import svimg.metrics
from svimg import io
from svimg.ops import TemporalPSF


def _video(T=5, C=3, H=12, W=16, seed=0):
    """A DataArray with every kind of metadata save() must keep."""
    rng = np.random.default_rng(seed)
    dims = ("t", "c", "y", "x") if C else ("t", "y", "x")
    shape = (T, C, H, W) if C else (T, H, W)
    coords = {
        "t": ("t", np.arange(T) * 0.5, {"units": "s"}),
        "y": np.arange(H) * 0.25,
        "stamp": ("t", np.datetime64("2024-01-01T00:00:00", "ns") + np.arange(T) * np.timedelta64(1, "s")),
        "site": "well A1",
        "gain": (("y", "x"), np.linspace(0.5, 1.5, H * W).reshape(H, W)),
    }
    if C:
        coords["c"] = ["r", "g", "b"][:C]
    attrs = {"history": "2024-01-01T00:00:00Z made by a test", "svimg_parameters": '{"nfe": 20}',
             "seed": 3, "scale": [1.5, 2.0], "note": "ünïcode"}
    return xr.DataArray(rng.random(shape, dtype=np.float32), dims=dims, coords=coords, attrs=attrs, name="clip")


def _leftovers(folder):
    return sorted(p for p in os.listdir(folder) if p.startswith(".svimg"))


@pytest.mark.parametrize("ext", ["zarr", "tif", "npz"])
@pytest.mark.parametrize("channels", [3, 0])
def test_lossless_round_trip_keeps_dims_coords_attrs(tmp_path, ext, channels):
    da = _video(C=channels)
    path = io.save(da, tmp_path / f"clip.{ext}")
    back = io.load(path)
    assert back.dtype == np.float32
    xr.testing.assert_identical(back.compute(), da)
    assert _leftovers(tmp_path) == []


def test_round_trip_of_a_transposed_dataarray_comes_back_in_video_order(tmp_path):
    da = _video()
    back = io.load(io.save(da.transpose("y", "x", "c", "t"), tmp_path / "v.zarr"))
    assert back.dims == ("t", "c", "y", "x")
    np.testing.assert_array_equal(back.values, da.values)


def test_npy_round_trip_keeps_values_and_dims(tmp_path):
    for da in (_video(), _video(C=0)):
        back = io.load(io.save(da, tmp_path / f"v{da.ndim}.npy"))
        assert back.dims == da.dims
        np.testing.assert_array_equal(back.values, da.values)


def test_numpy_and_torch_inputs_are_saved_with_video_dims(tmp_path):
    arr = np.random.default_rng(1).random((3, 2, 8, 8), dtype=np.float32)
    back = io.load(io.save(torch.from_numpy(arr), tmp_path / "t.zarr"))
    assert back.dims == ("t", "c", "y", "x")
    np.testing.assert_array_equal(back.values, arr)
    back = io.load(io.save(arr[:, 0], tmp_path / "n.tif"))
    assert back.dims == ("t", "y", "x")


def _smooth(T, C, H, W):
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    frames = [0.5 + 0.35 * np.sin((x + 2 * t + 7 * c) / 6.0) * np.cos((y - t) / 5.0) for c in range(max(C, 1))]
    v = np.stack(frames, axis=1).astype(np.float32)
    return xr.DataArray(v, dims=("t", "c", "y", "x")) if C else xr.DataArray(v[:, 0], dims=("t", "y", "x"))


@pytest.mark.parametrize("channels, ext", [(3, "mp4"), (0, "mp4"), (3, "avi")])
def test_mp4_round_trip_within_codec_tolerance(tmp_path, channels, ext):
    da = _smooth(6, channels, 32, 48)
    da.attrs["fps"] = 12.0
    back = io.load(io.save(da, tmp_path / f"v.{ext}"))
    assert back.dims == da.dims and back.shape == da.shape
    # H.264 at CRF 12; colour loses more (yuv420p halves the chroma resolution)
    assert svimg.metrics.psnr(back, da) > (30.0 if channels else 40.0)
    assert back.attrs["fps"] == pytest.approx(12.0)


def test_gray_gif_round_trip_is_exact_to_8_bits(tmp_path):
    da = _smooth(4, 0, 10, 14)
    back = io.load(io.save(da, tmp_path / "v.gif"))
    assert back.dims == ("t", "y", "x")
    np.testing.assert_allclose(back.values, np.round(da.values * 255) / 255, atol=1e-6)


def test_preview_formats_refuse_what_they_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match="even height and width"):
        io.save(_smooth(2, 0, 9, 10), tmp_path / "odd.mp4")
    with pytest.raises(ValueError, match="1 or 3 channels"):
        io.save(_smooth(2, 2, 8, 8), tmp_path / "two.gif")
    with pytest.raises(ValueError, match="fps"):
        io.save(_smooth(2, 0, 8, 8), tmp_path / "v.mp4", fps=0)
    with pytest.raises(ValueError, match="not written"):
        io.save(_smooth(2, 0, 8, 8), tmp_path / "v.webm")
    assert os.listdir(tmp_path) == []


def test_zarr_layout_is_ome_ngff_with_one_frame_per_chunk(tmp_path):
    da = _video(T=4, H=8, W=10)
    path = io.save(da, tmp_path / "v.zarr")
    group = zarr.open_group(path, mode="r")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [(a["name"], a["type"]) for a in ms["axes"]] == [("t", "time"), ("c", "channel"), ("y", "space"),
                                                            ("x", "space")]
    assert ms["axes"][0]["unit"] == "s"
    scale = ms["datasets"][0]["coordinateTransformations"][0]
    assert ms["datasets"][0]["path"] == "0" and scale == {"type": "scale", "scale": [0.5, 1.0, 0.25, 1.0]}
    image = group["0"]
    assert image.chunks == (1, 3, 8, 10)
    assert tuple(image.metadata.dimension_names) == ("t", "c", "y", "x")
    assert image.attrs["svimg_parameters"] == '{"nfe": 20}'
    ds = xr.open_zarr(path, consolidated=False)  # plain xarray reads the same store
    np.testing.assert_array_equal(ds["0"].values, da.values)
    np.testing.assert_array_equal(ds["t"].values, da["t"].values)


def test_zarr_reads_lazily(tmp_path):
    path = io.save(_video(T=6), tmp_path / "v.zarr")
    da = io.load(path)
    assert isinstance(da.data, dask.array.Array)
    assert da.data.chunks[0] == (1,) * 6


def test_foreign_ngff_04_store_with_z_and_physical_time(tmp_path):
    """A zarr v2 / NGFF 0.4 image (t, c, z, y, x) with z = 1, uint16 data and a 2 s time step."""
    data = np.random.default_rng(2).integers(0, 65535, (3, 2, 1, 6, 7), dtype=np.uint16)
    group = zarr.open_group(str(tmp_path / "ngff.zarr"), mode="w", zarr_format=2)
    arr = group.create_array("s0", shape=data.shape, dtype=data.dtype, chunks=(1, 1, 1, 6, 7))
    arr[...] = data
    axes = [{"name": "t", "type": "time", "unit": "second"}, {"name": "c", "type": "channel"},
            {"name": "z", "type": "space"}, {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1, 1, 0.5, 0.5]},
                                                     {"type": "translation", "translation": [10.0, 0, 0, 0, 0]}]}]}]
    da = io.load(tmp_path / "ngff.zarr")
    assert da.dims == ("t", "c", "y", "x") and da.shape == (3, 2, 6, 7)
    np.testing.assert_allclose(da.values, data[:, :, 0] / 65535.0, rtol=1e-6)
    np.testing.assert_allclose(da["t"].values, [10.0, 12.0, 14.0])
    np.testing.assert_allclose(da["x"].values, np.arange(7) * 0.5)
    assert da["t"].attrs["units"] == "second"


def test_a_plain_xarray_zarr_store_is_read_with_its_coordinates(tmp_path):
    da = _video(C=0).drop_vars(["stamp", "site"])  # xarray would encode these differently
    da.to_dataset(name="frames").to_zarr(tmp_path / "xr.zarr", consolidated=False, zarr_format=3)
    back = io.load(tmp_path / "xr.zarr")
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_array_equal(back["gain"].values, da["gain"].values)
    np.testing.assert_array_equal(back["t"].values, da["t"].values)


def test_bare_zarr_array_gets_dims_by_rank_and_as_dataarray_accepts_it(tmp_path):
    arr = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(4, 8, 8), dtype="uint8", chunks=(1, 8, 8))
    arr[...] = np.arange(4 * 64, dtype=np.uint8).reshape(4, 8, 8)
    da = io.as_dataarray(arr)
    assert da.dims == ("t", "y", "x")
    np.testing.assert_allclose(da.values, arr[...] / 255.0, rtol=1e-6)
    with pytest.raises(TypeError, match="path or a zarr"):
        io.as_dataarray(42)


def test_forward_op_accepts_a_zarr_path_and_returns_a_dataarray(tmp_path):
    x = _video(T=6, H=8, W=8)
    path = io.save(x, tmp_path / "x.zarr")
    op = TemporalPSF(3)
    y = svimg.forward_op(str(path), op)
    assert isinstance(y, xr.DataArray) and y.dims == x.dims
    np.testing.assert_allclose(y.values, svimg.forward_op(x.values, op), atol=1e-6)
    assert y.attrs["svimg_operation"] == "forward_op" and y.attrs["seed"] == 3  # provenance added, attrs kept
    y2 = svimg.forward_op(zarr.open_group(path, mode="r"), op)
    np.testing.assert_array_equal(y2.values, y.values)


def test_integer_and_boolean_data_are_scaled_by_dtype_max(tmp_path):
    u8 = np.array([[[0, 51, 255]]], dtype=np.uint8)
    np.save(tmp_path / "u8.npy", u8)
    np.testing.assert_allclose(io.load(tmp_path / "u8.npy").values, u8 / 255.0, rtol=1e-6)
    u16 = np.array([[[0, 65535], [13107, 0]]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "u16.tif", u16)
    np.testing.assert_allclose(io.load(tmp_path / "u16.tif").values, u16 / 65535.0, rtol=1e-6)
    np.savez(tmp_path / "b.npz", mask=np.array([[[True, False]]]))
    np.testing.assert_array_equal(io.load(tmp_path / "b.npz").values, [[[1.0, 0.0]]])


def test_foreign_tiff_axes(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 255, (6, 5, 3), dtype=np.uint8)  # one RGB image: YXS
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    da = io.load(tmp_path / "rgb.tif")
    assert da.dims == ("t", "c", "y", "x") and da.shape == (1, 3, 6, 5)
    np.testing.assert_allclose(da.values[0], rgb.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    stack = np.zeros((4, 1, 6, 5), dtype=np.uint16)  # ImageJ-style hyperstack, single channel
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, metadata={"axes": "TCYX"})
    assert io.load(tmp_path / "ij.tif").dims == ("t", "y", "x")


@pytest.mark.parametrize("frames, expected", [(3, [0, 1, 2]), ((2, 5), [2, 3, 4]), (slice(1, None, 2), [1, 3, 5]),
                                              (slice(-2, None), [4, 5]), ((None, 2), [0, 1])])
@pytest.mark.parametrize("ext", ["zarr", "mp4"])
def test_frame_selection(tmp_path, frames, expected, ext):
    T = 6
    levels = np.linspace(0.1, 0.9, T, dtype=np.float32)  # each frame a flat, distinct grey
    da = xr.DataArray(np.broadcast_to(levels[:, None, None], (T, 8, 8)).copy(), dims=("t", "y", "x"))
    path = io.save(da, tmp_path / f"v.{ext}")
    got = io.load(path, frames=frames)
    np.testing.assert_allclose(got.values.mean(axis=(1, 2)), levels[expected], atol=0.01)


def test_bad_frame_selections(tmp_path):
    path = io.save(_video(T=4), tmp_path / "v.zarr")
    with pytest.raises(ValueError, match="more frames"):
        io.load(path, frames=5)
    with pytest.raises(ValueError, match="selects no frames"):
        io.load(path, frames=(3, 3))
    with pytest.raises(ValueError, match="positive"):
        io.load(path, frames=0)
    with pytest.raises(TypeError, match="frames"):
        io.load(path, frames="all")


def test_size_crops_centre_and_resizes_lazily(tmp_path):
    da = _video(T=3, H=12, W=16)
    back = io.load(io.save(da, tmp_path / "v.zarr"), size=6)
    assert isinstance(back.data, dask.array.Array) and back.shape == (3, 3, 6, 6)
    np.testing.assert_allclose(back.values, io.center_crop_resize(da.values, 6), atol=1e-6)
    assert "gain" not in back.coords and "t" in back.coords  # the (y, x) map described the old pixels
    np.testing.assert_allclose(back.y.values, 0.125 + 0.5 * np.arange(6))  # 12 rows of 0.25 as 6 of 0.5, same extent


def test_center_crop_resize():
    frames = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    np.testing.assert_array_equal(io.center_crop_resize(frames, 4), frames[:, :, 1:5])  # crop only
    tall = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    np.testing.assert_array_equal(io.center_crop_resize(tall, 3), tall[2:5])
    flat = np.full((1, 3, 40, 50), 0.25, np.float32)
    np.testing.assert_allclose(io.center_crop_resize(flat, 16), 0.25, atol=1e-6)
    rng = np.random.default_rng(0).random((2, 33, 33)).astype(np.float32)
    out = io.center_crop_resize(rng, 8)  # antialiased: a convex combination, stays in [0, 1]
    assert out.shape == (2, 8, 8) and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert abs(out.mean() - rng.mean()) < 0.02
    up = io.center_crop_resize(rng, 66)
    assert up.shape == (2, 66, 66)
    with pytest.raises(ValueError, match="size"):
        io.center_crop_resize(rng, 0)
    with pytest.raises(TypeError):
        io.center_crop_resize(np.array([["a"]]), 2)


def test_existing_path_is_refused_then_replaced_with_overwrite(tmp_path):
    first, second = _video(seed=0), _video(seed=1)
    for ext in ("zarr", "tif"):
        path = io.save(first, tmp_path / f"v.{ext}")
        with pytest.raises(FileExistsError, match="overwrite"):
            io.save(second, path)
        np.testing.assert_array_equal(io.load(path).values, first.values)  # untouched
        io.save(second, path, overwrite=True)
        np.testing.assert_array_equal(io.load(path).values, second.values)
    assert _leftovers(tmp_path) == []


def _failing_at_frame(da, frame, exc):
    """``da`` as a dask array (one frame per chunk) whose frame ``frame`` raises ``exc`` when computed."""
    def block(b, block_info=None):
        if block_info[0]["chunk-location"][0] == frame:
            raise exc
        return b
    lazy = dask.array.from_array(da.values, chunks=(1,) + da.shape[1:])
    return da.copy(data=lazy.map_blocks(block, dtype=lazy.dtype))


@pytest.mark.parametrize("ext", ["zarr", "tif", "npy", "mp4"])
@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing_behind(tmp_path, ext, exc):
    da = _failing_at_frame(_smooth(4, 0, 8, 8), 2, exc)
    with pytest.raises(type(exc)):
        io.save(da, tmp_path / f"v.{ext}")
    assert os.listdir(tmp_path) == []
    # and a failed overwrite keeps the old file
    good = io.save(_smooth(4, 0, 8, 8), tmp_path / f"v.{ext}")
    with pytest.raises(type(exc)):
        io.save(da, good, overwrite=True)
    assert os.listdir(tmp_path) == [f"v.{ext}"]
    assert io.load(good).shape == (4, 8, 8)


def test_lazy_data_is_written_frame_chunk_by_frame_chunk(tmp_path):
    seen = []

    def record(b, block_info=None):
        seen.append((block_info[0]["chunk-location"][0], b.shape[0]))
        return b

    base = _smooth(6, 0, 8, 8)
    lazy = base.copy(data=dask.array.from_array(base.values, chunks=(2, 8, 8)).map_blocks(record, dtype=base.dtype))
    back = io.load(io.save(lazy, tmp_path / "v.zarr"))
    assert sorted(seen) == [(0, 2), (1, 2), (2, 2)]  # each chunk computed once, two frames at a time
    np.testing.assert_array_equal(back.values, base.values)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="format"):
        io.save(_video(), tmp_path / "v.xyz")
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load(tmp_path / "missing.zarr")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save(_video(), tmp_path / "no" / "v.zarr")
    with pytest.raises(ValueError, match="dims"):
        io.save(xr.DataArray(np.zeros((2, 3, 4)), dims=("a", "b", "c")), tmp_path / "v.zarr")
    with pytest.raises(ValueError, match="shape"):
        io.save(np.zeros((3, 4)), tmp_path / "v.zarr")
    with pytest.raises(TypeError, match="path"):
        io.load(3)
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 3, 3)), b=np.zeros(2))
    with pytest.raises(ValueError, match="one array"):
        io.load(tmp_path / "two.npz")
    vol = zarr.open_array(str(tmp_path / "vol.zarr"), mode="w", shape=(2, 3, 4, 4), dtype="f4",
                          dimension_names=("t", "z", "y", "x"))
    with pytest.raises(ValueError, match="3-D volume"):
        io.load(tmp_path / "vol.zarr")
    assert vol.shape == (2, 3, 4, 4)


def test_attrs_are_stored_as_json(tmp_path):
    da = _video()
    da.attrs.update(count=np.int64(4), weights=np.arange(3.0), op=TemporalPSF(3))
    back = io.load(io.save(da, tmp_path / "v.zarr"))
    assert back.attrs["count"] == 4 and back.attrs["weights"] == [0.0, 1.0, 2.0]
    assert back.attrs["op"] == repr(TemporalPSF(3))
    json.dumps(back.attrs)
