"""Training images: read_sources over folders, images, stacks and videos; multi-scale random_crops."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import svimg.io
from svimg.priors.training_data import random_crops, read_sources


def _pools():
    g = torch.Generator().manual_seed(0)
    return [[torch.rand(3, 12, 14, generator=g).half() for _ in range(2)], [torch.rand(3, 10, 10, generator=g).half()]]


def _regions(img, crop, low=None):
    """Every crop x crop resize of a square region (side low..min(H, W), low = crop by default), both flips."""
    h, w = img.shape[-2:]
    for r in range(crop if low is None else low, min(h, w) + 1):
        for y in range(h - r + 1):
            for x in range(w - r + 1):
                patch = img[:, y:y + r, x:x + r].float()[None]
                if r != crop:
                    patch = F.interpolate(patch, size=(crop, crop), mode="bilinear", antialias=r > crop,
                                          align_corners=False)
                yield patch[0]
                yield patch[0].flip(-1)


def _candidates(pools, crop, low=None):
    """Every resized region of every pool image (:func:`_regions`), stacked."""
    return torch.stack([p for imgs in pools for img in imgs for p in _regions(img, crop, low)])


def _distance(candidates, crop):
    """max |candidate - crop| of the nearest candidate."""
    return float((candidates - crop).abs().flatten(1).amax(1).min())


def test_random_crops_shape_range_and_seeded_determinism():
    pools = _pools()
    a = random_crops(pools, 6, 8, torch.Generator().manual_seed(1))
    b = random_crops(pools, 6, 8, torch.Generator().manual_seed(1))
    c = random_crops(pools, 6, 8, torch.Generator().manual_seed(2))
    assert a.shape == (6, 3, 8, 8) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6  # convex resampling weights: within rounding of [-1, 1]


def test_random_crops_are_resized_regions_of_the_pool_images():
    pools = _pools()
    crops = (random_crops(pools, 12, 8, torch.Generator().manual_seed(3)) + 1) / 2
    candidates = _candidates(pools, 8)
    for crop in crops:
        assert _distance(candidates, crop) < 1e-6  # some region of some image, resized (and maybe flipped), is this crop


def test_random_crops_min_region_enlarges_smaller_regions():
    pools = _pools()
    crops = (random_crops(pools, 24, 8, torch.Generator().manual_seed(4), min_region=3) + 1) / 2
    small = _candidates(pools, 8, low=3)
    assert max(_distance(small, c) for c in crops) < 1e-6  # every crop is a resized region of side >= 3
    regular = _candidates(pools, 8)
    assert any(_distance(regular, c) > 1e-3 for c in crops)  # some were enlarged
    for bad in (0, 9):
        with pytest.raises(ValueError, match="min_region"):
            random_crops(pools, 2, 8, torch.Generator(), min_region=bad)


def test_random_crops_weights_pick_the_pool():
    pools = [[torch.zeros(1, 16, 16).half()], [torch.ones(1, 16, 16).half()]]
    crops = random_crops(pools, 20, 8, torch.Generator().manual_seed(0), weights=[0.0, 1.0])
    torch.testing.assert_close(crops, torch.ones(20, 1, 8, 8))  # resizing a constant: 1 up to rounding


def _png(path, shape, seed=0):
    iio.imwrite(path, (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8))


def test_read_sources_reads_folders_stacks_and_videos(tmp_path):
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    _png(tmp_path / "imgs" / "a.png", (20, 24))
    _png(tmp_path / "imgs" / "sub" / "b.jpg", (30, 18))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    stack = np.random.default_rng(1).random((3, 16, 20)).astype(np.float32)
    svimg.io.save(stack, tmp_path / "stack.tif")
    svimg.io.save(stack, tmp_path / "stack.zarr")
    np.save(tmp_path / "stack.npy", stack)
    pool = read_sources([tmp_path / "imgs", tmp_path / "stack.tif", tmp_path / "stack.zarr", tmp_path / "stack.npy"])
    assert [tuple(p.shape) for p in pool] == [(1, 20, 24), (1, 30, 18)] + [(1, 16, 20)] * 9
    assert all(p.dtype == torch.float16 and p.min() >= 0 and p.max() <= 1 for p in pool)
    torch.testing.assert_close(pool[2][0].float(), torch.from_numpy(stack[0]), atol=1e-3, rtol=0)
    rgb = read_sources([tmp_path / "imgs"], channels=3)
    assert rgb[0].shape == (3, 20, 24) and torch.equal(rgb[0][0], rgb[0][2])
    video = np.random.default_rng(2).random((4, 3, 16, 16)).astype(np.float32)
    svimg.io.save(video, tmp_path / "clip.mp4")
    frames = read_sources([tmp_path / "clip.mp4"], channels=1, max_side=8)
    assert [tuple(f.shape) for f in frames] == [(1, 8, 8)] * 4  # RGB averaged to grey, downscaled to max_side


def test_read_sources_errors_name_the_culprit(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "mixed").mkdir()
    _png(tmp_path / "mixed" / "a.png", (20, 20))
    _png(tmp_path / "mixed" / "b.png", (20, 20, 3))
    _png(tmp_path / "tiny.png", (8, 30))
    cases = [
        ([tmp_path / "none"], f"training source {str(tmp_path / 'none')!r} does not exist"),
        ([tmp_path / "empty"], f"training source {str(tmp_path / 'empty')!r} holds no image, video or stack"),
        ([tmp_path / "bad"], f"cannot read training file {str(tmp_path / 'bad' / 'broken.png')!r}"),
        ([tmp_path / "mixed"], "training images have mixed channel counts"),
        ([tmp_path / "tiny.png"], "is smaller than 16 px"),
        ([], "no training images were given"),
    ]
    for sources, message in cases:
        with pytest.raises(ValueError) as err:
            read_sources(sources)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert len(read_sources([tmp_path / "mixed"], channels=3)) == 2  # converting resolves the mix
