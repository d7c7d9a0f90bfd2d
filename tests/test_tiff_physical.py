"""Physical pixel size and frame interval of TIFF files (written by tifffile as ImageJ and OME-TIFF) reach the
coordinates and every output: OME-Zarr scale and units, TIFF resolution tags, a super-resolved result."""

import json

import numpy as np
import pytest
import tifffile
import zarr

import svimg
from svimg import io
from svimg.ops import TemporalPSF


def _stack():
    return np.random.default_rng(0).random((4, 8, 10)).astype(np.float32)


@pytest.fixture(params=["imagej", "ome"])
def physical_tiff(request, tmp_path):
    """A (T, Y, X) stack with 0.2 um pixels and 0.5 s between frames, as ImageJ or as OME-TIFF."""
    path = tmp_path / f"{request.param}.tif"
    if request.param == "imagej":
        tifffile.imwrite(path, _stack(), imagej=True, resolution=(5, 5),
                         metadata={"axes": "TYX", "unit": "um", "finterval": 0.5})
    else:
        tifffile.imwrite(path, _stack(), ome=True,
                         metadata={"axes": "TYX", "PhysicalSizeX": 0.2, "PhysicalSizeXUnit": "µm",
                                   "PhysicalSizeY": 0.2, "PhysicalSizeYUnit": "µm",
                                   "TimeIncrement": 0.5, "TimeIncrementUnit": "s"})
    return path


def test_tiff_pixel_size_and_frame_interval_become_coordinates(physical_tiff):
    da = io.load(physical_tiff)
    np.testing.assert_allclose(da.x.values, 0.2 * np.arange(10))
    np.testing.assert_allclose(da.y.values, 0.2 * np.arange(8))
    np.testing.assert_allclose(da.t.values, 0.5 * np.arange(4))
    assert da.x.attrs["units"] == "micrometer" and da.t.attrs["units"] == "second"
    np.testing.assert_allclose(io.load(physical_tiff, frames=(1, 3)).t.values, [0.5, 1.0])
    small = io.load(physical_tiff, size=4)  # the central 8 x 8 square (columns 1..8) as 4 x 4 pixels of 0.4 um
    np.testing.assert_allclose(small.x.values, 0.2 * 1 + 0.1 + 0.4 * np.arange(4))
    np.testing.assert_allclose(small.y.values, 0.1 + 0.4 * np.arange(4))
    assert small.x.attrs["units"] == "micrometer"


def test_ome_zarr_output_has_the_scale_and_units(physical_tiff, tmp_path):
    y = svimg.forward_op(io.load(physical_tiff), TemporalPSF(3))
    io.save(y, tmp_path / "y.zarr")
    ome = zarr.open_group(str(tmp_path / "y.zarr"), mode="r").attrs["ome"]
    (multiscale,) = ome["multiscales"]
    axes = {a["name"]: a.get("unit") for a in multiscale["axes"]}
    assert axes == {"t": "second", "y": "micrometer", "x": "micrometer"}
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    np.testing.assert_allclose(scale, [0.5, 0.2, 0.2])


def test_tiff_output_carries_the_pixel_size_as_resolution_tags(physical_tiff, tmp_path):
    io.save(io.load(physical_tiff), tmp_path / "out.tif")
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages.first
        assert int(page.resolutionunit) == 3  # CENTIMETER
        np.testing.assert_allclose(page.resolution, (1 / 0.2e-4, 1 / 0.2e-4))
    back = io.load(tmp_path / "out.tif")
    np.testing.assert_allclose(back.x.values, 0.2 * np.arange(10))
    assert back.t.attrs["units"] == "second"


def test_plain_tiff_in_centimetres_and_screen_dpi(tmp_path):
    tifffile.imwrite(tmp_path / "cm.tif", _stack(), resolution=(5e3, 5e3), resolutionunit="CENTIMETER")
    np.testing.assert_allclose(io.load(tmp_path / "cm.tif").x.values, 2.0 * np.arange(10))  # 2 um pixels
    tifffile.imwrite(tmp_path / "dpi.tif", _stack(), resolution=(72, 72), resolutionunit="INCH")
    assert "x" not in io.load(tmp_path / "dpi.tif").coords


def test_cli_super_resolution_keeps_physical_units(physical_tiff, tmp_path):
    from svimg.cli import main

    assert main(["-q", "degrade", str(physical_tiff), str(tmp_path / "y.zarr"), "--op", "spatial:sr:2"]) == 0
    y = io.load(tmp_path / "y.zarr")
    np.testing.assert_allclose(y.x.values, 0.1 + 0.4 * np.arange(5))  # 2x2 pooled pixels: 0.4 um, centred
    assert main(["restore", str(tmp_path / "y.zarr"), str(tmp_path / "x.zarr"), "--method", "cg", "-q"]) == 0
    x = io.load(tmp_path / "x.zarr")
    np.testing.assert_allclose(x.x.values, 0.2 * np.arange(10), atol=1e-12)
    assert x.x.attrs["units"] == "micrometer" and x.t.attrs["units"] == "second"
    history = x.attrs["history"].splitlines()
    assert len(history) == 3 and "forward_op(op=" in history[0] and "cg_only" in history[2]
    assert json.loads(x.attrs["svimg_parameters"])["n_iter"] > 0
