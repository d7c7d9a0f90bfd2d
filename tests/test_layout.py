"""The array layout rule (svimg._convert): channels-last arrays as imageio / tifffile hand them out, single images,
and results given back in the caller's layout; xarray keeps its dims; provenance history is appended."""

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
import xarray as xr

import svimg
from svimg.ops import TemporalPSF
from svimg.priors import GaussianPrior


@pytest.fixture
def rgb_gif_frames(tmp_path):
    """A (T, H, W, 3) float video, read back from a GIF written by imageio (its own channels-last layout)."""
    rng = np.random.default_rng(0)
    frames = (rng.random((6, 16, 24, 3)) * 255).astype(np.uint8)
    path = tmp_path / "clip.gif"
    iio.imwrite(path, frames, extension=".gif", loop=0)
    video = iio.imread(path, index=None)
    assert video.shape[-1] == 3 and video.ndim == 4  # imageio's layout: (T, H, W, C)
    return video[..., :3].astype(np.float32) / 255


def measured(shape, op):
    """The shape op's measurement of a video of ``shape`` has: sum(op.margins) frames fewer ("valid" PSF)."""
    return (shape[0] - sum(op.margins), *shape[1:])


def test_channels_last_numpy_needs_channel_axis_and_comes_back_channels_last(rgb_gif_frames):
    op = TemporalPSF(3)
    with pytest.raises(ValueError, match=r"looks channels-last \(T, H, W, C\).*channel_axis=-1"):
        svimg.forward_op(rgb_gif_frames, op)
    y = svimg.forward_op(rgb_gif_frames, op, channel_axis=-1)
    assert y.shape == measured(rgb_gif_frames.shape, op)
    first = svimg.forward_op(np.ascontiguousarray(np.moveaxis(rgb_gif_frames, -1, 1)), op)
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), y, rtol=1e-6)
    back = svimg.adjoint_op(y, op, channel_axis=-1)
    assert back.shape == rgb_gif_frames.shape
    x = svimg.cg_solve(op, y, n_iter=2, channel_axis=-1, x0=np.zeros_like(rgb_gif_frames))
    assert x.shape == rgb_gif_frames.shape


def test_channels_last_tensor_and_sample_answer_in_the_callers_layout(rgb_gif_frames):
    op = TemporalPSF(3)
    yt = svimg.forward_op(torch.from_numpy(rgb_gif_frames), op, channel_axis=3)
    assert isinstance(yt, torch.Tensor) and tuple(yt.shape) == measured(rgb_gif_frames.shape, op)
    x = svimg.sample(yt.numpy(), op, GaussianPrior(channels=3), nfe=2, seed=0, progress=False, channel_axis=-1)
    assert x.shape == tuple(yt.shape)  # the frames aligned with y
    reference = svimg.sample(np.ascontiguousarray(np.moveaxis(yt.numpy(), -1, 1)), op, GaussianPrior(channels=3),
                             nfe=2, seed=0, progress=False)
    np.testing.assert_allclose(np.moveaxis(reference, 1, -1), x, rtol=1e-5, atol=1e-6)


def test_blind_sample_answers_in_the_callers_layout(rgb_gif_frames):
    from svimg import blind

    y = svimg.forward_op(rgb_gif_frames, TemporalPSF(3), channel_axis=-1)
    kw = dict(prior=GaussianPrior(channels=3), candidates=[TemporalPSF(1), TemporalPSF(3)], nfe=2, seed=0,
              progress=False)
    x, psf = blind.sample(y, channel_axis=-1, **kw)
    assert x.shape == y.shape
    reference, reference_psf = blind.sample(np.ascontiguousarray(np.moveaxis(y, -1, 1)), **kw)
    assert psf == reference_psf
    np.testing.assert_allclose(np.moveaxis(reference, 1, -1), x, rtol=1e-5, atol=1e-6)


def test_single_rgb_image_is_not_taken_for_a_video(tmp_path):
    path = tmp_path / "photo.png"
    iio.imwrite(path, (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    image = iio.imread(path).astype(np.float32) / 255
    with pytest.raises(ValueError, match=r"\(64, 64, 3\) looks like one RGB\(A\) image"):
        svimg.sample(image, TemporalPSF(3), GaussianPrior(channels=3), nfe=2, progress=False)
    with pytest.raises(ValueError, match="add a time axis"):
        svimg.forward_op(image, TemporalPSF(3), channel_axis=-1)
    y = svimg.forward_op(image[None], TemporalPSF(1), channel_axis=-1)  # one frame, said explicitly
    assert y.shape == (1, 64, 64, 3)


def test_tifffile_channels_last_stack(tmp_path):
    """tifffile gives an RGB time-lapse as (T, H, W, 3) (contig samples)."""
    path = tmp_path / "rgb.tif"
    data = (np.random.default_rng(2).random((5, 12, 10, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(path, data, photometric="rgb")
    stack = tifffile.imread(path).astype(np.float32) / 65535
    assert stack.shape == (5, 12, 10, 3)
    with pytest.raises(ValueError, match="channels-last"):
        svimg.forward_op(stack, TemporalPSF(3))
    assert svimg.forward_op(stack, TemporalPSF(3), channel_axis=-1).shape == measured(stack.shape, TemporalPSF(3))


def test_xarray_keeps_its_dims_and_refuses_channel_axis(rgb_gif_frames):
    da = xr.DataArray(rgb_gif_frames, dims=("t", "y", "x", "c"))
    y = svimg.forward_op(da, TemporalPSF(3))
    assert y.dims == ("t", "y", "x", "c")
    with pytest.raises(ValueError, match="dims .* say where the channels are"):
        svimg.forward_op(da, TemporalPSF(3), channel_axis=-1)


def test_history_is_appended_and_names_the_operator():
    da = xr.DataArray(np.random.default_rng(3).random((4, 8, 8)).astype(np.float32), dims=("t", "y", "x"),
                      attrs={"history": "2020-01-01T00:00:00Z acquired"})
    op = TemporalPSF(3)
    y = svimg.forward_op(da, op)
    lines = y.attrs["history"].splitlines()
    assert lines[0] == "2020-01-01T00:00:00Z acquired" and f"forward_op(op={op!r})" in lines[1]
    x = svimg.sample(y.clip(0, 1), op, GaussianPrior(channels=1), nfe=2, seed=0, progress=False)
    lines = x.attrs["history"].splitlines()
    assert len(lines) == 3 and "forward_op(" in lines[1] and " sample(op=" in lines[2]


def test_baselines_and_metrics_take_the_same_layout(rgb_gif_frames):
    op = TemporalPSF(3)
    y = svimg.forward_op(rgb_gif_frames, op, channel_axis=-1)
    x = svimg.baselines.cg_only(y, op, n_iter=5, channel_axis=-1)
    assert x.shape == y.shape  # the frames aligned with y
    first = svimg.baselines.cg_only(np.ascontiguousarray(np.moveaxis(y, -1, 1)), op, n_iter=5)
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), x, rtol=1e-5, atol=1e-6)
    assert svimg.baselines.admm_tv(y, op, n_iter=2, cg_iters=2, channel_axis=-1).shape == y.shape
    lead, trail = op.margins
    truth = rgb_gif_frames[lead:rgb_gif_frames.shape[0] - trail]  # the clean frames x is aligned with
    scores = svimg.metrics.evaluate(x, truth, channel_axis=-1)
    assert scores == svimg.metrics.evaluate(np.moveaxis(x, -1, 1), np.moveaxis(truth, -1, 1))
    assert svimg.metrics.psnr(x, truth, channel_axis=-1) == pytest.approx(scores["psnr"])
    with pytest.raises(ValueError, match="channels-last"):
        svimg.metrics.psnr(x, truth)
