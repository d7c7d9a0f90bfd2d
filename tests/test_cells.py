"""svimg.data.cells: the synthetic fluorescence time-lapse."""

import numpy as np
import pytest
from skimage.measure import label

from svimg.data import cells


def test_shape_range_and_metadata():
    noisy, truth = cells(frames=6, size=32, seed=1, return_truth=True)
    for da in (noisy, truth):
        assert da.dims == ("t", "y", "x") and da.shape == (6, 32, 32) and da.dtype == np.float32
        assert float(da.min()) >= 0 and float(da.max()) <= 1
        assert da.attrs["seed"] == 1 and da.attrs["photons"] == 100.0 and da.attrs["n_cells"] == 2
    assert noisy.name == "cells" and truth.name == "cells_truth"
    assert cells(frames=2, size=64).attrs["n_cells"] == 8  # default density: 8 cells per 64 x 64


def test_same_seed_same_movie_other_seed_other_movie():
    a = cells(frames=4, size=24, seed=5)
    np.testing.assert_array_equal(a.values, cells(frames=4, size=24, seed=5).values)
    assert not np.array_equal(a.values, cells(frames=4, size=24, seed=6).values)


def test_noise_is_poisson_gaussian_around_the_truth():
    photons, read = 50.0, 0.03
    noisy, truth = cells(frames=8, size=48, seed=2, photons=photons, read_noise=read, return_truth=True)
    r, t = (noisy - truth).values.astype(np.float64), truth.values.astype(np.float64)
    inside = (t > 0.1) & (t < 0.9)  # away from the clipping at 0 and 1
    assert abs(r[inside].mean()) < 0.01
    expected = (t[inside] / photons + read**2).mean()
    assert r[inside].var() == pytest.approx(expected, rel=0.1)


def test_noise_free_options_give_the_truth():
    noisy, truth = cells(frames=3, size=16, photons=None, read_noise=0.0, return_truth=True)
    np.testing.assert_array_equal(noisy.values, truth.values)
    assert noisy.attrs["photons"] is None


def test_cells_move():
    truth = cells(frames=6, size=32, seed=0, return_truth=True)[1].values
    assert np.abs(np.diff(truth, axis=0)).max() > 0.05


def test_a_cell_divides_into_two():
    """One cell, no random walk: after its division the movie shows two separate blobs."""
    for seed in range(50):  # a movie whose division leaves the daughters a few frames to drift apart
        _, truth = cells(frames=20, size=48, n_cells=1, seed=seed, speed=0.0, return_truth=True)
        if truth.attrs["division_frames"] and truth.attrs["division_frames"][0] <= 14:
            break
    (t,) = truth.attrs["division_frames"]
    assert t <= 14 and truth.attrs["n_divisions"] == 1
    blobs = [label(frame > 0.3).max() for frame in truth.values]
    assert blobs[:t] == [1] * t and blobs[-1] == 2


@pytest.mark.parametrize("kwargs, match", [({"frames": 0}, "frames"), ({"size": 4}, "size"),
                                           ({"n_cells": 0}, "n_cells"), ({"photons": 0}, "photons"),
                                           ({"read_noise": -1}, "read_noise"), ({"speed": float("nan")}, "speed"),
                                           ({"seed": -1}, "seed")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cells(**kwargs)
