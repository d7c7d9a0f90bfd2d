"""svimg.metrics: PSNR/SSIM against scikit-image, the temporal error's definition, LPIPS/FVD on local weights."""

import numpy as np
import pytest
import torch
import xarray as xr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from svimg import metrics



def _pair(shape, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    ref = rng.random(shape, dtype=np.float32)
    x = np.clip(ref + noise * rng.standard_normal(shape), 0, 1).astype(np.float32)
    return x, ref


def test_ssim_equals_skimage_with_channel_axis():
    x, ref = _pair((3, 3, 20, 23))
    ours = metrics.ssim(x, ref, per_frame=True)
    theirs = [structural_similarity(x[t], ref[t], data_range=1.0, channel_axis=0) for t in range(3)]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert metrics.ssim(x, ref) == pytest.approx(np.mean(theirs), abs=1e-4)


@pytest.mark.parametrize("win_size", [3, 7, 11])
def test_ssim_equals_skimage_single_channel(win_size):
    x, ref = _pair((4, 17, 16), seed=1, noise=0.3)
    ours = metrics.ssim(x, ref, win_size=win_size, per_frame=True)
    theirs = [structural_similarity(x[t], ref[t], data_range=1.0, win_size=win_size) for t in range(4)]
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_ssim_data_range():
    x, ref = _pair((2, 12, 12), seed=2)
    theirs = [structural_similarity(255 * x[t], 255 * ref[t], data_range=255.0) for t in range(2)]
    np.testing.assert_allclose(metrics.ssim(255 * x, 255 * ref, data_range=255, per_frame=True), theirs, atol=1e-4)
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)


def test_psnr_per_frame_and_mean():
    x, ref = _pair((3, 2, 8, 8), seed=3)
    per = metrics.psnr(x, ref, per_frame=True)
    np.testing.assert_allclose(per, [peak_signal_noise_ratio(ref[t], x[t], data_range=1.0) for t in range(3)],
                               rtol=1e-6)
    assert metrics.psnr(x, ref) == pytest.approx(per.mean())
    assert metrics.psnr(ref, ref) == np.inf


def test_temporal_consistency_definition():
    x, ref = _pair((5, 2, 6, 7), seed=4)
    d = (x[1:] - x[:-1]).astype(np.float64) - (ref[1:] - ref[:-1])
    per = np.sqrt((d**2).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(metrics.temporal_consistency(x, ref, per_frame=True), per, rtol=1e-6)
    assert metrics.temporal_consistency(x, ref) == pytest.approx(np.sqrt((per**2).mean()))
    # a constant offset has the same changes: zero error, though PSNR is finite
    assert metrics.temporal_consistency(ref + 0.1, ref) == pytest.approx(0.0, abs=1e-7)
    flicker = ref + 0.05 * np.array([1, -1, 1, -1, 1], np.float32)[:, None, None, None]
    assert metrics.temporal_consistency(flicker, ref) == pytest.approx(0.1, rel=1e-5)
    with pytest.raises(ValueError, match="2 frames"):
        metrics.temporal_consistency(ref[:1], ref[:1])


def test_inputs_of_every_kind_agree():
    x, ref = _pair((3, 3, 9, 9), seed=5)
    expected = metrics.evaluate(x, ref)
    as_torch = metrics.evaluate(torch.from_numpy(x), torch.from_numpy(ref).double())
    dims = ("t", "c", "y", "x")
    as_xr = metrics.evaluate(xr.DataArray(x, dims=dims), xr.DataArray(ref, dims=dims).transpose("x", "t", "c", "y"))
    for got in (as_torch, as_xr):
        for key in ("psnr", "ssim", "temporal_consistency"):
            assert got[key] == pytest.approx(expected[key], rel=1e-6)
    assert len(expected["psnr_per_frame"]) == 3 and len(expected["temporal_consistency_per_frame"]) == 2
    assert "temporal_consistency" not in metrics.evaluate(x[:1], ref[:1])


def test_bad_inputs():
    x, ref = _pair((3, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(x, ref[:2])
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(x, ref, data_range=0)
    with pytest.raises(ValueError, match="win_size"):
        metrics.ssim(x, ref, win_size=4)
    with pytest.raises(ValueError, match="at least 9x9"):
        metrics.ssim(x, ref, win_size=9)
    with pytest.raises(TypeError, match="floating"):
        metrics.psnr((x * 255).astype(np.uint8), ref)


# ---------------------------------------------------------------- LPIPS

def _fake_lpips_weights(tmp_path):
    """Random tensors with the shapes of torchvision's AlexNet features and LPIPS's linear layers, in two files."""
    gen = torch.Generator().manual_seed(0)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    backbone = {}
    for i, shape in shapes.items():
        backbone[f"features.{i}.weight"] = torch.randn(shape, generator=gen) * 0.05
        backbone[f"features.{i}.bias"] = torch.zeros(shape[0])
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # unrelated keys are ignored
    lins = {f"lin{k}.model.1.weight": torch.rand((1, c, 1, 1), generator=gen)
            for k, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(lins, tmp_path / "alex.pth")
    return [tmp_path / "alexnet.pth", tmp_path / "alex.pth"]


def test_lpips_without_weights_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics._perceptual.LPIPS_ENV, raising=False)
    x, ref = _pair((2, 3, 32, 32))
    missing = tmp_path / "alex.pth"
    with pytest.raises(FileNotFoundError, match=f"weights not found at '{missing}'"):
        metrics.lpips(x, ref, weights=missing)
    with pytest.raises(FileNotFoundError, match="SVIMG_LPIPS_WEIGHTS"):
        metrics.lpips(x, ref)


def test_lpips_with_a_fake_network(tmp_path, monkeypatch):
    paths = _fake_lpips_weights(tmp_path)
    x, ref = _pair((3, 3, 32, 36), seed=6, noise=0.2)
    per = metrics.lpips(x, ref, paths, per_frame=True)
    assert per.shape == (3,) and np.all(per > 0)
    assert metrics.lpips(ref, ref, paths) == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(metrics.lpips(ref, x, paths, per_frame=True), per, rtol=1e-5)  # symmetric
    monkeypatch.setenv(metrics._perceptual.LPIPS_ENV, str(paths[0]) + __import__("os").pathsep + str(paths[1]))
    assert metrics.lpips(x, ref) == pytest.approx(per.mean(), rel=1e-6)
    gray = metrics.lpips(x[:, 0], ref[:, 0], paths)  # one channel is repeated to three
    assert gray == pytest.approx(metrics.lpips(np.repeat(x[:, :1], 3, 1), np.repeat(ref[:, :1], 3, 1), paths),
                                 rel=1e-6)
    with pytest.raises(ValueError, match="lack"):
        metrics.lpips(x, ref, paths[:1])
    with pytest.raises(ValueError, match="32x32"):
        metrics.lpips(x[..., :16, :16], ref[..., :16, :16], paths)


# ---------------------------------------------------------------- FVD

class _FakeI3D(torch.nn.Module):
    """Features = per-channel means and standard deviations over (T, H, W), in the I3D calling convention."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False):
        assert x.shape[1:2] == (3,) and x.shape[-2:] == (224, 224)
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)


def test_fvd_without_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(metrics._perceptual.FVD_ENV, raising=False)
    videos = [np.zeros((2, 8, 8), np.float32)] * 2
    with pytest.raises(FileNotFoundError, match="weights not found at"):
        metrics.fvd(videos, videos, weights=tmp_path / "i3d_torchscript.pt")
    with pytest.raises(FileNotFoundError, match="SVIMG_FVD_WEIGHTS"):
        metrics.fvd(videos, videos)


def test_fvd_with_a_fake_torchscript_detector(tmp_path):
    path = tmp_path / "i3d.pt"
    torch.jit.script(_FakeI3D()).save(str(path))
    rng = np.random.default_rng(7)
    a = rng.random((4, 2, 3, 16, 16), dtype=np.float32)  # (N, T, C, H, W)
    b = np.clip(a * 0.5 + 0.4, 0, 1).astype(np.float32)
    assert metrics.fvd(a, a, path) == pytest.approx(0.0, abs=1e-6)
    d = metrics.fvd(a, b, path)
    assert d > 0
    assert metrics.fvd(list(a), list(b), _FakeI3D(), batch_size=3) == pytest.approx(d, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 videos"):
        metrics.fvd(a[:1], b, path)


def test_frechet_distance_of_one_dimensional_gaussians():
    f1 = np.array([[0.0], [2.0]])  # mean 1, sample variance 2
    f2 = np.array([[3.0], [5.0], [7.0]])  # mean 5, sample variance 4
    expected = (1 - 5) ** 2 + (np.sqrt(2) - np.sqrt(4)) ** 2
    assert metrics.frechet_distance(f1, f2) == pytest.approx(expected)
