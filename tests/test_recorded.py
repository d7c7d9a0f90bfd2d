"""Recorded clips: svimg.data.record, the temporal term of the data step, and the defaults on a noisy stack."""

import numpy as np
import pytest
import torch

import svimg
from svimg.ops import TemporalPSF
from svimg.priors.analytic import GaussianPrior
from svimg.solvers.cg import conjugate_gradient, normal_system
from svimg.solvers.differences import finite_difference, laplacian_matrix, temporal_laplacian


def rand(*shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_record_keeps_complete_exposures_and_aligns_the_truth():
    sharp = rand(20, 3, 6, 8)
    op = TemporalPSF(7)
    y, truth = svimg.data.record(sharp.numpy(), op, noise_std=0.0, bits=None)
    assert y.shape == (14, 3, 6, 8) and truth.shape == (14, 3, 6, 8)
    np.testing.assert_allclose(y[0], sharp[0:7].mean(0).numpy(), rtol=1e-12)  # exposure 0: sharp frames 0..6
    np.testing.assert_array_equal(truth, sharp[3:17].numpy())  # its centre: sharp frame 3


def test_record_adds_noise_clips_and_rounds_to_the_bit_depth():
    sharp = rand(10, 1, 16, 16)
    y, _ = svimg.data.record(sharp, TemporalPSF(3), noise_std=0.05, bits=8, seed=1)
    assert isinstance(y, torch.Tensor) and y.dtype == sharp.dtype
    levels = y * 255
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-9)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    clean = svimg.forward_op(sharp, TemporalPSF(3))
    assert 0.04 < float((y - clean).std()) < 0.06


def test_temporal_laplacian_is_d_transpose_d():
    x = rand(9, 2, 3, 4)
    (d,) = finite_difference(x, (0,))
    assert float((x * temporal_laplacian(x)).sum()) == pytest.approx(float((d * d).sum()), rel=1e-12)
    L = torch.as_tensor(laplacian_matrix(9))
    torch.testing.assert_close(temporal_laplacian(x), torch.einsum("ts,schw->tchw", L, x))


@pytest.mark.parametrize("per_pixel", [False, True])
def test_smoothed_normal_system_is_the_explicit_matrix(per_pixel):
    """H = I + g (M^T M + lam L) along time, lam one number or one weight per pixel."""
    op, T, g = TemporalPSF(5), 12, 0.7
    x0, y = rand(T, 1, 2, 3, seed=1), rand(T - 4, 1, 2, 3, seed=2)
    lam = rand(1, 1, 2, 3, seed=3) if per_pixel else 0.2
    H, b = normal_system(op, y, x0, g, smooth=lam)
    M, L = op.matrix(T), laplacian_matrix(T)
    for p in range(6):
        i, j = divmod(p, 3)
        lam_p = float(lam[0, 0, i, j]) if per_pixel else lam
        dense = np.eye(T) + g * (M.T @ M + lam_p * L)
        v = rand(T, 1, 2, 3, seed=4)
        np.testing.assert_allclose(H(v)[:, 0, i, j].numpy(), dense @ v[:, 0, i, j].numpy(), rtol=1e-12)
    x, _ = conjugate_gradient(H, b, x0, 200, tol=1e-12)
    np.testing.assert_allclose(H(x).numpy(), b.numpy(), atol=1e-9)


def test_defaults_beat_the_input_on_a_noisy_recorded_stack():
    """The user names the exposure only: noise estimated, valid model, temporal term; closed-form prior."""
    t = np.arange(30)[:, None, None, None]
    yy, xx = np.mgrid[0:16, 0:16] / 16
    sharp = 0.5 + 0.3 * np.sin(2 * np.pi * (xx + yy) + 0.2 * t)  # (30, 1, 16, 16): a grating drifting in time
    op = TemporalPSF(7)
    y, truth = svimg.data.record(sharp, op, noise_std=0.03, bits=8, seed=0)
    prior = GaussianPrior(mean=0.0, std=0.5, channels=1, dtype=torch.float64)
    x = svimg.sample(y, op, prior, nfe=10, seed=0, progress=False)
    assert x.shape == y.shape

    def err(a):
        return float(np.mean((np.asarray(a) - truth) ** 2))

    assert err(x) < 0.5 * err(y)
