"""Recorded clips: svimg.data.record, the temporal term of the data step, and the defaults on a noisy stack."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

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


@pytest.mark.parametrize("block", [1, 6, 7, 1 << 20])  # a frame (of 6 elements) per block, one, about one, all
def test_weighted_temporal_laplacian_block_by_block_is_the_dense_product(monkeypatch, block):
    import svimg.solvers.differences as differences

    monkeypatch.setattr(differences, "BLOCK", block)
    x, weights, start = rand(9, 1, 2, 3), rand(8, 1, 2, 3, seed=1), rand(9, 1, 2, 3, seed=2)
    D = torch.as_tensor(np.diff(np.eye(9), axis=0))
    dense = torch.einsum("kt,kchw,ks,schw->tchw", D, weights, D, x)  # D^T diag(weights) D x, pixel by pixel
    torch.testing.assert_close(temporal_laplacian(x, weights), dense)
    out = start.clone()
    assert temporal_laplacian(x, weights, out=out) is out
    torch.testing.assert_close(out, start + dense)
    torch.testing.assert_close(temporal_laplacian(x, 0.5), 0.5 * torch.einsum("ts,schw->tchw",
                                                                               torch.as_tensor(laplacian_matrix(9)), x))


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
    """The user names the exposure only (noise estimated, the valid model, the temporal term); closed-form prior."""
    yy, xx = np.mgrid[0:16, 0:16] / 16
    sharp = np.repeat((0.3 + 0.4 * xx * yy)[None, None], 30, axis=0)
    for t in range(30):
        sharp[t, 0, 6:10, 2 + t // 3:5 + t // 3] = 0.9  # a block moving right one pixel every three frames
    op = TemporalPSF(7)
    y, truth = svimg.data.record(sharp, op, noise_std=0.03, bits=8, seed=0)
    prior = GaussianPrior(mean=0.0, std=0.2, channels=1, dtype=torch.float64)
    x = svimg.sample(y, op, prior, nfe=10, seed=0, progress=False)
    without = svimg.sample(y, op, prior, nfe=10, seed=0, progress=False, smooth_t=0.0)
    assert x.shape == y.shape

    def err(a):
        return float(np.mean((np.asarray(a) - truth) ** 2))

    assert err(x) < 0.8 * err(y)  # measured 0.72
    assert err(x) < 0.8 * err(without)  # the temporal term does it: without it the input wins


def test_temporal_weights_smooth_where_the_estimate_stands_still_and_spare_its_changes():
    from svimg.sampling.data_step import EDGE_NOISE_RATIO, temporal_weights

    sigma, lam = 0.01, 0.3
    x = torch.full((6, 3, 2, 2), 0.5, dtype=torch.float64)
    x[4:, :, 0, 0] = 0.9  # pixel (0, 0) changes between frames 3 and 4
    x[:, 0, 1, 0] += 0.03 * torch.arange(6)  # pixel (1, 0) drifts in one channel: mean change 0.01
    w = temporal_weights(x, sigma, lam)
    assert w.shape == (5, 1, 2, 2)
    torch.testing.assert_close(w[:, 0, 1, 1], torch.full((5,), lam, dtype=torch.float64))
    eps = EDGE_NOISE_RATIO * sigma
    assert float(w[3, 0, 0, 0]) == pytest.approx(lam / np.sqrt(1 + (0.4 / eps) ** 2))
    torch.testing.assert_close(w[[0, 1, 2, 4], 0, 0, 0], torch.full((4,), lam, dtype=torch.float64))
    torch.testing.assert_close(w[:, 0, 1, 0], torch.full((5,), lam / np.sqrt(1 + (0.01 / eps) ** 2),
                                                         dtype=torch.float64))


def test_the_data_step_reweights_the_temporal_term_from_its_own_estimate(monkeypatch):
    import importlib

    from svimg.priors.schedule import linear_betas
    from svimg.sampling.schedule import DDSSchedule

    data_step = importlib.import_module("svimg.sampling.data_step")
    seen = []
    monkeypatch.setattr(data_step, "normal_system", lambda op, y, x0, gamma, aty, smooth: seen.append(smooth) or (
        lambda v: v, x0))
    schedule, op = DDSSchedule(4, linear_betas()), TemporalPSF(3)
    y = torch.full((4, 1, 2, 2), 0.5, dtype=torch.float64)
    step = data_step.DataStep(op, y, schedule, n_iter=1, sigma_y=0.01, smooth=0.2)
    x0 = torch.full((6, 1, 2, 2), 0.5, dtype=torch.float64)
    x0[3:, 0, 0, 0] = 0.9
    step(x0, schedule.timesteps[0])
    torch.testing.assert_close(seen[-1], data_step.temporal_weights(x0, 0.01, step.lam))
    assert float(seen[-1][2, 0, 0, 0]) < 0.1 * step.lam  # the estimate's edge, not y's, is spared


def test_map_steps_solve_to_the_relative_tolerance_and_the_others_keep_their_count():
    import importlib

    from svimg.priors.schedule import linear_betas
    from svimg.sampling.schedule import DDSSchedule

    data_step = importlib.import_module("svimg.sampling.data_step")
    schedule, op = DDSSchedule(4, linear_betas()), TemporalPSF(13)  # a long "valid" exposure: ill-conditioned
    y, x0, t = op.forward(rand(24, 1, 2, 3)), rand(24, 1, 2, 3, seed=1), schedule.timesteps[1]
    step = data_step.DataStep(op, y, schedule, n_iter=5, sigma_y=0.01, smooth=0.2, rtol=1e-10)
    weights = data_step.temporal_weights(x0, 0.01, step.lam)
    H, b = normal_system(op, y, x0, step.weight(t), smooth=weights)
    dense = torch.stack([H(e.reshape(x0.shape)).flatten() for e in torch.eye(x0.numel(), dtype=torch.float64)], 1)
    exact = torch.linalg.solve(dense, b.flatten()).reshape(x0.shape)

    torch.testing.assert_close(step(x0, t), exact, rtol=0, atol=1e-5)  # solved (to CG's ||r|| < 1e-5), past cg_iters
    loose = data_step.DataStep(op, y, schedule, n_iter=5, sigma_y=0.01, smooth=0.2, rtol=1e-3)(x0, t)
    r = b.flatten() - dense @ loose.flatten()
    assert float(r.norm()) <= 1e-3 * float((b - H(x0)).norm())
    fixed = data_step.DataStep(op, y, schedule, n_iter=5, sigma_y=0.01, smooth=0.2, rtol=None)(x0, t)
    torch.testing.assert_close(fixed, conjugate_gradient(H, b, x0, 5)[0])  # exactly cg_iters iterations
    assert float((fixed - exact).abs().max()) > 1e-3  # five were far from the solution
    paper = data_step.DataStep(op, y, schedule, n_iter=5, gamma=2.0, rtol=1e-10)(x0, t)  # no noise model: the count
    H2, b2 = normal_system(op, y, x0, 2.0)
    torch.testing.assert_close(paper, conjugate_gradient(H2, b2, x0, 5)[0])


def test_recorded_blur_example_runs_and_reports_what_it_measured(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "recorded_blur.py"
    spec = importlib.util.spec_from_file_location("recorded_blur", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--frames", "10", "--pool", "8", "--exposure", "3", "--nfe", "2"])
    assert result["frames"] == 8 and result["noise_std"] > 0  # 10 sharp frames, exposure 3; noise estimated
    assert f"PSNR  degraded {result['input']:.2f} dB   svimg {result['svimg']:.2f} dB" in capsys.readouterr().out


def test_temporal_weight_penalises_the_slowest_unseen_pattern_alike_for_every_exposure():
    from svimg.sampling.data_step import DEFAULT_SMOOTH_T, DataStep, smooth_lambda
    from svimg.sampling.schedule import DDSSchedule
    from svimg.priors.schedule import linear_betas

    for s in (7, 13):  # D_t^T D_t on the period-s pattern cos(2 pi t / s): eigenvalue (2 sin(pi / s))^2
        assert smooth_lambda(DEFAULT_SMOOTH_T, s) * (2 * np.sin(np.pi / s)) ** 2 == pytest.approx(DEFAULT_SMOOTH_T)
    schedule, y = DDSSchedule(4, linear_betas()), torch.full((6, 1, 2, 2), 0.5, dtype=torch.float64)
    valid = DataStep(TemporalPSF(13), y, schedule, n_iter=1, sigma_y=0.01, smooth=DEFAULT_SMOOTH_T)
    circular = DataStep(TemporalPSF(13, boundary="circular"), y, schedule, n_iter=1, sigma_y=0.01,
                        smooth=DEFAULT_SMOOTH_T)
    assert valid.lam == pytest.approx(smooth_lambda(DEFAULT_SMOOTH_T, 13))
    assert circular.lam == pytest.approx(DEFAULT_SMOOTH_T / 4)  # it sees every pattern


def test_a_lossy_decoded_video_gets_the_noise_floor_and_its_results_drop_the_codec(tmp_path):
    from svimg.sampling.noise_level import AUTO, LOSSY_NOISE_FLOOR, noise_floor, resolve_noise_std

    assert noise_floor({"codec": "h264"}) == LOSSY_NOISE_FLOOR and noise_floor({"codec": "FFV1"}) == 0.0
    assert noise_floor({}) == 0.0 and noise_floor(None) == 0.0
    flat = torch.full((5, 1, 8, 8), 0.5, dtype=torch.float64)  # estimates at 0
    assert resolve_noise_std(AUTO, flat, floor=LOSSY_NOISE_FLOOR) == (LOSSY_NOISE_FLOOR, True)
    assert resolve_noise_std(0.02, flat, floor=LOSSY_NOISE_FLOOR) == (0.02, False)  # a stated level stands

    yy, xx = np.mgrid[0:16, 0:16] / 16
    frames = np.repeat((0.2 + 0.5 * xx * yy)[None], 6, axis=0).astype(np.float32)
    svimg.io.save(xr.DataArray(frames, dims=("t", "y", "x")), tmp_path / "clip.mp4")
    decoded = svimg.io.load(tmp_path / "clip.mp4")
    assert decoded.attrs["codec"] == "h264"
    prior = GaussianPrior(mean=0.0, std=0.2, channels=1, dtype=torch.float64)
    x = svimg.sample(decoded, TemporalPSF(3), prior, nfe=2, seed=0, progress=False)
    params = json.loads(x.attrs["svimg_parameters"])
    assert params["noise_std"] >= LOSSY_NOISE_FLOOR and params["noise_std_estimated"]
    assert "codec" not in x.attrs  # the restoration is not what the codec decoded
