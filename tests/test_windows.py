"""Long videos: overlapping windows, blending, resumable zarr output (svimg.sampling.windows)."""

import numpy as np
import pytest
import torch

import svimg
import svimg.io
from svimg.ops import Downsample, GaussianBlur, Identity, TemporalPSF
from svimg.priors import GaussianPrior
from svimg.sampling.windows import (
    PROGRESS_KEY,
    WindowRows,
    blend_weights,
    sample_windowed,
    split_temporal,
    store_is_complete,
    window_system,
    window_starts,
)


class CountingPrior(GaussianPrior):
    """GaussianPrior that records the number of frames of every eps call."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def eps(self, x_t, t):
        self.batches.append(x_t.shape[0])
        return super().eps(x_t, t)


class Stop(Exception):
    pass


def _video(T, size=8, seed=0):
    """A smooth synthetic video: drifting sinusoids (values in [0, 1])."""
    t = np.arange(T)[:, None, None, None]
    c = np.arange(3)[None, :, None, None]
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 3)[None, :, None, None]
    v = 0.5 + 0.3 * np.sin(0.7 * xx + 0.4 * yy - 0.35 * t + phase + c) * np.cos(0.05 * t)
    return v.astype(np.float32)


@pytest.mark.parametrize("T, window, overlap", [(64, 32, 16), (40, 16, 7), (50, 16, 13), (10, 16, 8)])
def test_layout_covers_every_frame(T, window, overlap):
    starts = window_starts(T, window, overlap)
    window = min(window, T)
    assert starts[0] == 0 and starts[-1] + window == T
    assert all(b - a <= window - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap frames
    total = np.zeros(T)
    for a, w in zip(starts, blend_weights(starts, window)):
        assert np.all(w >= 0) and np.all(w <= 1)
        total[a:a + window] += w
    assert np.all(total > 0)
    if len(starts) > 1 and (T - window) % (window - overlap) == 0:  # pairwise overlaps only: a partition of unity
        np.testing.assert_allclose(total, 1.0, atol=1e-12)


@pytest.mark.parametrize("boundary", ["circular", "zero", "reflect", "replicate"])
def test_window_system_holds_the_global_rows_over_every_frame_they_reach(boundary):
    psf = TemporalPSF(kernel=[1, 2, 4, 2, 1, 1], boundary=boundary)  # even support: an off-centre kernel
    T = 20
    M = psf.matrix(T)
    for a, b in ((0, 10), (5, 15), (10, 20)):
        frames, rows = window_system(psf, T, a, b)
        assert set(range(a, b)) <= set(frames) and len(frames) == len(set(frames))
        np.testing.assert_array_equal(rows, M[a:b][:, frames])  # exact rows ...
        assert np.all(np.delete(M[a:b], frames, axis=1) == 0)  # ... and no frame they reach is left out
    frames, _ = window_system(psf, T, 5, 15)
    assert frames == list(range(5 - 2, 15 + 3))  # support 6, centre 3: 2 frames before, 3 after


def test_window_rows_operator_adjoint():
    _, M = window_system(TemporalPSF(3), 12, 2, 9)
    op = WindowRows(M)
    g = torch.Generator().manual_seed(0)
    u, v = (torch.randn(n, 2, 3, 3, generator=g, dtype=torch.float64) for n in (9, 7))
    assert torch.allclose((op.forward(u) * v).sum(), (u * op.adjoint(v)).sum())
    assert torch.allclose(op.normal(u), op.adjoint(op.forward(u)))
    assert op.input_shape((7, 2, 3, 3)) == (9, 2, 3, 3) and op.output_shape((9, 2, 3, 3)) == (7, 2, 3, 3)
    with pytest.raises(ValueError, match="9 frames"):
        op.forward(torch.zeros(6, 1, 2, 2))


@pytest.mark.parametrize("boundary, gamma", [("circular", None), ("reflect", 0.7), ("zero", None)])
def test_global_data_step_is_cg_on_the_whole_video(boundary, gamma):
    """The out-of-core final step equals the in-memory CG reference on the whole video (float64)."""
    from svimg.sampling.global_step import global_data_step, psf_sparse
    from svimg.solvers.cg import conjugate_gradient, normal_system

    psf = TemporalPSF(kernel=[1, 3, 3, 1, 1], boundary=boundary)
    np.testing.assert_array_equal(psf_sparse(psf, 23).toarray(), psf.matrix(23))
    op = GaussianBlur(3, 0.8) @ psf
    g = torch.Generator().manual_seed(1)
    y = torch.rand(23, 2, 6, 6, generator=g, dtype=torch.float64)
    x0 = torch.rand(23, 2, 6, 6, generator=g, dtype=torch.float64)
    H, b = normal_system(op, y, x0, gamma)
    expected, _ = conjugate_gradient(H, b, x0, 7, tol=0)
    x = x0.numpy().copy()
    global_data_step(psf, GaussianBlur(3, 0.8), lambda f: y[torch.as_tensor(f)], x,
                     [np.empty_like(x) for _ in range(3)], 7, gamma=gamma, block=5, tol=0)
    np.testing.assert_allclose(x, expected.numpy(), rtol=0, atol=1e-10)


def test_split_temporal():
    psf = TemporalPSF(5)
    t, s = split_temporal(Downsample(2) @ psf @ GaussianBlur(3, 1.0))
    assert t is psf and repr(s) == repr(Downsample(2) @ GaussianBlur(3, 1.0))
    t, s = split_temporal(psf)
    assert t is psf and isinstance(s, Identity)
    t, s = split_temporal(2.0 * GaussianBlur(3, 1.0))
    assert t is None
    with pytest.raises(ValueError, match="2 TemporalPSF"):
        split_temporal(TemporalPSF(3) @ TemporalPSF(5))
    with pytest.raises(TypeError, match="op"):
        split_temporal("blur")


def test_windowed_matches_single_pass():
    """Three windows of 16 frames (the default) vs one pass over 32 frames: analytic prior, same seed, gamma 1.

    Comparable because every part of a step is local in time: the analytic prior
    acts frame by frame, the batch noise is the same (1, C, H, W) draw for every
    window and for the single pass, and the regularised data step
    (I + gamma A^T A)^-1 decays exponentially away from a window's ends, where
    rows reaching outside the window are modelled by its mirror image.  The
    cross-fade gives those ends little weight, so what is left is the decayed
    tail: measured max 8.7e-4, rms 1.8e-4 (seeds 0, 1, 3; 1.7e-5 max with windows
    of 32 over 64 frames); the tolerance is 3e-3 (max) and 5e-4 (rms).  With
    gamma=None the difference is larger (max 4.8e-3 here) and with a box PSF the
    frames a window cannot determine do not decay at all (docs/long_videos.md).
    """
    x = _video(32)
    op = TemporalPSF.gaussian(1.0, boundary="reflect")
    y = svimg.forward_op(x, op)
    kw = dict(nfe=10, gamma=1.0, noise_std=None, smooth_t=0.0, seed=3, progress=False)  # the paper's data step
    prior = CountingPrior()
    single = svimg.sample(y, op, GaussianPrior(), **kw)
    windowed = sample_windowed(y, op, prior, window=16, overlap=8, final_iters=0, **kw)
    assert len(window_starts(32, 16, 8)) == 3
    assert max(prior.batches) == 16 + op.support - 1  # one window and the frames its rows reach
    diff = np.abs(windowed - single)
    assert diff.max() < 3e-3
    assert np.sqrt(np.mean(diff**2)) < 5e-4
    # The final whole-video step (default) moves further towards the data: no worse than the single pass.
    final = sample_windowed(y, op, GaussianPrior(), window=16, overlap=8, **kw)
    assert _psnr(final, x) >= _psnr(single, x) - 0.05


def test_windowed_valid_psf_matches_single_pass():
    """A "valid" PSF (a clip cut from a longer recording): each window of measured frames is the same operator over
    its own unknown frames, blended in unknown-frame coordinates; vs one pass over all 36 measured frames (42
    unknowns), analytic prior, same seed.  Noise-free with the exact whole-video last step: measured max 4.7e-4,
    rms 5.9e-5 (seed 3); the paper's gamma step without the final step: max 5.0e-3, rms 5.5e-4.  What is left
    is the prior's share that a window decides from its own frames."""
    op = TemporalPSF.gaussian(1.0)
    x = _video(42)
    y = svimg.forward_op(x, op)
    assert y.shape[0] == 36 and op.margins == (3, 3)
    exact = dict(nfe=10, noise_std=None, seed=3, progress=False)
    single = svimg.sample(y, op, GaussianPrior(), keep_margins=True, **exact)
    windowed = sample_windowed(y, op, GaussianPrior(), window=16, overlap=8, keep_margins=True, **exact)
    assert windowed.shape == single.shape == x.shape
    diff = np.abs(windowed - single)
    assert diff.max() < 2e-3 and np.sqrt(np.mean(diff**2)) < 2e-4
    aligned = sample_windowed(y, op, GaussianPrior(), window=16, overlap=8, **exact)
    np.testing.assert_array_equal(aligned, windowed[3:-3])
    paper = dict(nfe=10, gamma=1.0, noise_std=None, smooth_t=0.0, seed=3, progress=False)
    diff = np.abs(sample_windowed(y, op, GaussianPrior(), window=16, overlap=8, final_iters=0, **paper)
                  - svimg.sample(y, op, GaussianPrior(), **paper))
    assert diff.max() < 1e-2 and np.sqrt(np.mean(diff**2)) < 1.5e-3


def test_single_window_is_plain_sample():
    x = _video(12)
    op = TemporalPSF(3)
    y = svimg.forward_op(x, op)
    kw = dict(nfe=4, seed=1, progress=False)
    np.testing.assert_array_equal(sample_windowed(y, op, GaussianPrior(), window=16, **kw),
                                  svimg.sample(y, op, GaussianPrior(), **kw))


@pytest.mark.parametrize("boundary", ["replicate", "valid"])
def test_interrupted_run_resumes_without_redoing_windows(tmp_path, boundary):
    """"valid": the store holds the frames aligned with y (38); the restored margins wait in a side array."""
    import zarr

    from svimg.sampling.windows import MARGINS

    x = _video(40)
    op = TemporalPSF(3, boundary=boundary)
    source = tmp_path / "y.zarr"
    svimg.io.save(svimg.forward_op(x, op), source)  # read back window by window
    out = tmp_path / "x.zarr"
    kw = dict(window=16, overlap=8, nfe=3, seed=5, progress=False)
    n_windows = len(window_starts(40 - sum(op.margins), 16, 8))
    assert n_windows == 4

    calls = []

    def stop_after_two(k, a, b):
        calls.append(k)
        if k == 1:
            raise Stop

    with pytest.raises(Stop):
        sample_windowed(str(source), op, GaussianPrior(), out=out, window_callback=stop_after_two, **kw)
    assert calls == [0, 1]
    assert not store_is_complete(out)
    with pytest.warns(UserWarning, match="unfinished windowed restoration .2 window"):
        record = svimg.io.load(out).attrs[PROGRESS_KEY]
    assert record["windows_done"] == 2 and record["complete"] is False
    assert (MARGINS in zarr.open_group(str(out), mode="r")) == (boundary == "valid")

    steps = []  # one step-0 call per window the sampler runs
    resumed = sample_windowed(str(source), op, GaussianPrior(), out=out,
                              window_callback=lambda k, a, b: calls.append(k),
                              callback=lambda step, t, x0: steps.append(step), **kw)
    assert calls == [0, 1, 2, 3]
    assert steps.count(0) == n_windows - 2
    assert store_is_complete(out)
    assert resumed.attrs[PROGRESS_KEY]["complete"] is True
    assert resumed.sizes["t"] == 40 - sum(op.margins) and MARGINS not in zarr.open_group(str(out), mode="r")

    uninterrupted = sample_windowed(str(source), op, GaussianPrior(), out=tmp_path / "fresh.zarr", **kw)
    np.testing.assert_array_equal(resumed.values, uninterrupted.values)  # the same out-of-core final step

    again = []  # a complete store is returned as it is
    sample_windowed(str(source), op, GaussianPrior(), out=out, callback=lambda *a: again.append(a), **kw)
    assert again == []


def test_resume_refuses_other_arguments(tmp_path):
    x = _video(24)
    op = TemporalPSF(3)
    y = svimg.forward_op(x, op)
    out = tmp_path / "x.zarr"
    with pytest.raises(Stop):
        sample_windowed(y, op, GaussianPrior(), out=out, window=12, overlap=6, nfe=2, seed=1, progress=False,
                        window_callback=lambda k, a, b: (_ for _ in ()).throw(Stop()))
    with pytest.raises(ValueError, match="seed"):
        sample_windowed(y, op, GaussianPrior(), out=out, window=12, overlap=6, nfe=2, seed=2, progress=False)
    resumed = sample_windowed(y, op, GaussianPrior(), out=out, window=12, overlap=6, nfe=2, progress=False)
    assert resumed.attrs[PROGRESS_KEY]["seed"] == 1  # seed=None reuses the recorded one
    fresh = sample_windowed(y, op, GaussianPrior(), out=out, window=12, overlap=6, nfe=2, seed=2, overwrite=True,
                            progress=False)
    assert fresh.attrs[PROGRESS_KEY]["seed"] == 2


def test_single_channel_and_spatial_operator(tmp_path):
    x = _video(24, size=8)[:, 0]  # (T, H, W)
    op = Downsample(2) @ TemporalPSF(3)
    y = svimg.forward_op(x, op)
    res = sample_windowed(y, op, GaussianPrior(channels=1), window=12, overlap=6, nfe=2, seed=0, progress=False,
                          out=tmp_path / "o.zarr")
    assert res.dims == ("t", "y", "x") and res.shape == x[1:-1].shape  # aligned with y (margins (1, 1))
    mem = sample_windowed(y, op, GaussianPrior(channels=1), window=12, overlap=6, nfe=2, seed=0, progress=False)
    assert isinstance(mem, np.ndarray) and mem.shape == x[1:-1].shape
    np.testing.assert_array_equal(res.values, mem)
    whole = sample_windowed(y, op, GaussianPrior(channels=1), window=12, overlap=6, nfe=2, seed=0, progress=False,
                            out=tmp_path / "whole.zarr", keep_margins=True)
    assert whole.shape == x.shape
    np.testing.assert_array_equal(whole.values[1:-1], mem)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(overlap=2), ValueError, "at least the PSF support"),
        (dict(overlap=16), ValueError, "less than window"),
        (dict(window=1), ValueError, "window"),
        (dict(generator=torch.Generator()), TypeError, "seed="),
        (dict(seed=-1), ValueError, "seed"),
        (dict(out="x.npy"), ValueError, ".zarr"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    y = svimg.forward_op(_video(20), TemporalPSF(5))
    with pytest.raises(error, match=match):
        sample_windowed(y, TemporalPSF(5), GaussianPrior(), **{"window": 16, **kwargs})


def test_example_runs_at_tiny_size(tmp_path, capsys):
    """examples/long_video.py end to end: interrupted after window 0, resumed, compared with one pass."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "long_video.py"
    spec = importlib.util.spec_from_file_location("long_video_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main(["--prior", "analytic", "--frames", "24", "--size", "8", "--window", "12", "--nfe", "2",
                  "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "interrupted after window 0: store records windows_done=1, complete=False" in out
    n = len(window_starts(24, 12, 7))  # Gaussian PSF of 7 taps: overlap max(7, 12 // 2)
    assert f"resumed: ran windows {list(range(1, n))} (first run: [0]); complete=True" in out
    assert "windowed - single: max" in out
    assert store_is_complete(tmp_path / "x.zarr")


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@pytest.mark.parametrize("width", [7, 13])
def test_windowed_box_psf_within_1_db_of_single_pass(width, tmp_path):
    """Box PSFs (exact data step): windows of 16 with the final whole-video step vs one pass, analytic prior.

    Both end on the exact noise-free data step (CG in float64 to a relative residual of 1e-6), so on this
    invertible circular problem both land at float32 output precision: measured (48 frames, 16x16, nfe 10)
    width 7 single and windowed 130.5 dB, width 13 both 125.4 dB.  Within 1 dB, or both past 80 dB.  The
    store path (final step on memmaps) gives the in-memory result.
    """
    x = _video(48, size=16)
    op = TemporalPSF(width, boundary="circular")
    y = svimg.forward_op(x, op)
    kw = dict(nfe=10, seed=0, noise_std=None, progress=False)
    single = svimg.sample(y, op, GaussianPrior(), **kw)
    windowed = sample_windowed(y, op, GaussianPrior(), window=16, **kw)
    assert _psnr(windowed, x) > min(_psnr(single, x), 80.0) - 1.0
    stored = sample_windowed(y, op, GaussianPrior(), window=16, out=tmp_path / "x.zarr", **kw)
    np.testing.assert_allclose(np.asarray(stored), windowed, atol=1e-6)
    assert store_is_complete(tmp_path / "x.zarr") and not list(tmp_path.glob(".svimg-final-*"))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["uniform:7", "uniform:13"])
def test_windowed_box_psf_within_1_db_of_single_pass_bundled_prior(spec):
    """The same with the bundled prior on carphone (48 frames of 32x32, nfe 10)."""
    import svimg.data
    from svimg.cli.opspec import parse_ops

    x = svimg.data.clip("carphone", frames=48, size=32)
    op = parse_ops([f"temporal:{spec}:circular"])
    y = svimg.forward_op(x, op)
    kw = dict(nfe=10, seed=0, noise_std=None, progress=False)
    single = svimg.sample(y, op, **kw)
    windowed = sample_windowed(y, op, window=16, **kw)
    assert _psnr(windowed, x) > _psnr(single, x) - 1.0


@pytest.mark.parametrize("boundary", ["valid", "circular"])
def test_in_memory_windows_end_on_the_exact_eigenbasis_step_for_a_separable_blur(boundary):
    """Noise-free GaussianBlur @ TemporalPSF in windows: the whole-video step fits the data to FINAL_RTOL
    (CG alone, capped at 5 iterations here, stops far short); "valid": a rectangular temporal matrix, every
    unknown frame checked (keep_margins)."""
    from svimg.sampling.data_step import FINAL_RTOL

    op = GaussianBlur(5, 1.0) @ TemporalPSF(3, boundary=boundary)
    x = 0.25 + 0.5 * torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = op.forward(x)
    out = sample_windowed(y, op, GaussianPrior(channels=1, dtype=torch.float64), window=8, seed=0, nfe=2,
                          progress=False, final_cg_iters=5, noise_std=None, keep_margins=True)
    assert out.shape == x.shape
    out = torch.as_tensor(np.asarray(out))
    r = op.adjoint(y) - op.normal(out)
    assert float(r.norm() / op.adjoint(y).norm()) < 10 * FINAL_RTOL
