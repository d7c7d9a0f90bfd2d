"""svimg.sample: Algorithm 1 of the paper, checked with the closed-form GaussianPrior."""

import math

import numpy as np
import pytest
import torch

import svimg
from svimg.ops import Downsample, GaussianBlur, Identity, Mask, TemporalPSF
from svimg.priors.analytic import GaussianPrior
from svimg.sampling import DDSSchedule, dds_step, sample, steepest_descent
from svimg.sampling.data_step import data_step


T, C, S = 6, 3, 8


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def run(y, op, prior=None, **kw):
    """Algorithm 1 as the paper runs it: noise-free data, the exact data step (noise_std=None named; the
    default "auto" for recorded data is tested in test_noise_std.py and below)."""
    kw.setdefault("seed", 0)
    kw.setdefault("progress", False)
    kw.setdefault("noise_std", None)
    return sample(y, op, GaussianPrior() if prior is None else prior, **kw)


def residual(x, op, y):
    return float(torch.linalg.vector_norm(op.forward(torch.as_tensor(x)) - torch.as_tensor(y)))


# (a) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise", ["batch", "initial", "independent"])
def test_identity_operator_returns_the_measurement(noise):
    y = rand(T, C, S, S, dtype=torch.float64)
    x = run(y, Identity(), noise=noise)
    torch.testing.assert_close(x, y, rtol=0, atol=1e-12)


def test_returns_the_input_type_and_the_operator_input_shape():
    y = rand(T, C, S, S).numpy()
    x = run(y, Identity(), nfe=2)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == y.shape
    y_small = rand(T, C, 2, 2)
    x_big = run(y_small, Downsample(4) @ TemporalPSF(3), nfe=2)
    assert isinstance(x_big, torch.Tensor) and x_big.shape == (T, C, 8, 8)


def test_valid_psf_returns_the_frames_aligned_with_y_or_all_with_keep_margins():
    """A "valid" PSF restores op.margins more frames than y at either end; the result is the y-aligned ones unless
    keep_margins, and the aligned frames are those of the whole restoration (not a second run)."""
    xr = pytest.importorskip("xarray")
    op = Downsample(2) @ TemporalPSF(4)  # margins (1, 2)
    y = svimg.forward_op(rand(T + 3, C, S, S, dtype=torch.float64), op)
    assert y.shape == (T, C, S // 2, S // 2)
    aligned, whole = run(y, op, nfe=3), run(y, op, nfe=3, keep_margins=True)
    assert aligned.shape == (T, C, S, S) and whole.shape == (T + 3, C, S, S)
    torch.testing.assert_close(aligned, whole[1:T + 1], rtol=0, atol=0)
    da = xr.DataArray(y.numpy(), dims=("t", "c", "y", "x"), coords={"t": np.arange(T) * 0.5})
    x = run(da, op, nfe=3)
    np.testing.assert_array_equal(x.t, da.t)
    params = __import__("json").loads(x.attrs["svimg_parameters"])
    assert params["margins"] == "[1, 2]" and params["margins_kept"] is False  # provenance writes lists as text
    with pytest.raises(TypeError, match="keep_margins"):
        run(y, op, keep_margins="yes")


def test_xarray_result_carries_provenance_of_every_parameter():
    xr = pytest.importorskip("xarray")
    y = xr.DataArray(rand(T, C, S, S).numpy(), dims=("t", "c", "y", "x"), coords={"t": np.arange(T) * 0.5})
    x = run(y, TemporalPSF(3), nfe=4, eta=0.3, seed=7, batch_size=4)
    assert isinstance(x, xr.DataArray) and x.dims == y.dims
    np.testing.assert_array_equal(x.t, y.t)
    params = __import__("json").loads(x.attrs["svimg_parameters"])
    assert params["nfe"] == 4 and params["eta"] == 0.3 and params["seed"] == 7 and params["batch_size"] == 4
    assert params["noise"] == "batch" and params["solver"] == "cg" and params["cg_iters"] == 5
    assert params["prior"].startswith("GaussianPrior") and "prior_sha256" in params
    assert x.attrs["svimg_operation"] == "sample"


# (b) -------------------------------------------------------------------------------------------
def _static_run(noise):
    # Uniform width 7 on 7 circular frames averages every frame: only the temporal mean is measured,
    # so whatever varies from frame to frame comes from the noise.
    frame = rand(1, C, S, S)
    op = TemporalPSF(7, boundary="circular")
    y = svimg.forward_op(frame.repeat(7, 1, 1, 1), op)
    return run(y, op, nfe=10, eta=0.8, noise=noise)


def test_static_video_stays_frame_identical_under_batch_noise():
    x = _static_run("batch")
    assert float((x - x[:1]).abs().max()) < 1e-5


@pytest.mark.parametrize("noise", ["independent", "initial"])
def test_static_video_drifts_apart_with_per_frame_noise(noise):
    x = _static_run(noise)
    assert float((x - x[:1]).abs().max()) > 0.1


# (c) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    TemporalPSF(3, boundary="zero"),
    GaussianBlur(5, 1.0) @ TemporalPSF(3, boundary="reflect"),
    Downsample(2) @ TemporalPSF(5),
])
def test_data_residual_far_below_the_unconditioned_sample(op):
    x_true = rand(T, C, S, S, seed=3)
    y = op.forward(x_true)
    conditioned = run(y, op, nfe=20, keep_margins=True)  # every unknown frame ("valid": op.margins more than y)
    unconditioned = run(y, op, nfe=20, cg_iters=0, keep_margins=True)
    assert residual(conditioned, op, y) < 0.1 * residual(unconditioned, op, y)


# (e) -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_chunked_prior_evaluation_matches_one_batch(batch_size):
    y = svimg.forward_op(rand(T, C, S, S), TemporalPSF(3))
    torch.testing.assert_close(run(y, TemporalPSF(3), batch_size=batch_size), run(y, TemporalPSF(3)), rtol=0, atol=1e-6)


def test_prior_sees_at_most_batch_size_frames():
    seen = []

    class Spy(GaussianPrior):
        def eps(self, x_t, t):
            seen.append(x_t.shape[0])
            return super().eps(x_t, t)

    run(rand(T, C, S, S), Identity(), Spy(), nfe=4, batch_size=4)
    assert seen == [4, 2] * 4


# (f) -------------------------------------------------------------------------------------------
def test_same_seed_same_output_bit_for_bit_and_generator_equivalent():
    y = svimg.forward_op(rand(T, C, S, S), TemporalPSF(5))
    a, b = run(y, TemporalPSF(5), seed=11), run(y, TemporalPSF(5), seed=11)
    assert torch.equal(a, b)
    c = run(y, TemporalPSF(5), seed=None, generator=torch.Generator().manual_seed(11))
    assert torch.equal(a, c)
    assert not torch.equal(a, run(y, TemporalPSF(5), seed=12))


def test_global_rng_does_not_matter():
    y = svimg.forward_op(rand(T, C, S, S), TemporalPSF(5))
    torch.manual_seed(1)
    a = run(y, TemporalPSF(5))
    torch.manual_seed(2)
    assert torch.equal(a, run(y, TemporalPSF(5)))


def test_unseeded_run_records_its_seed_and_can_be_repeated():
    xr = pytest.importorskip("xarray")
    y = xr.DataArray(rand(T, C, S, S).numpy(), dims=("t", "c", "y", "x"))
    first = run(y, TemporalPSF(5), seed=None)
    seed = __import__("json").loads(first.attrs["svimg_parameters"])["seed"]
    np.testing.assert_array_equal(first.values, run(y, TemporalPSF(5), seed=seed).values)


def test_x_T_sets_the_initial_noise():
    y = svimg.forward_op(rand(T, C, S, S), TemporalPSF(5))
    g = torch.Generator().manual_seed(5)
    x_T = torch.randn(1, C, S, S, generator=g)
    seeded = run(y, TemporalPSF(5), seed=5)  # the seed's first draw is x_T, then one draw per re-noising step
    assert torch.equal(run(y, TemporalPSF(5), seed=5, x_T=x_T.numpy()), seeded)
    assert torch.equal(run(y, TemporalPSF(5), seed=5, x_T=x_T.repeat(T, 1, 1, 1)), seeded)
    other = run(y, TemporalPSF(5), seed=5, x_T=torch.zeros(T, C, S, S))
    assert not torch.equal(other, seeded)


def test_callback_sees_every_step_and_can_cancel():
    y = svimg.forward_op(rand(T, C, S, S), TemporalPSF(3))
    y_copy = y.clone()
    calls = []
    run(y, TemporalPSF(3), nfe=5, callback=lambda step, t, x0: calls.append((step, t, tuple(x0.shape))))
    assert calls == [(i, t, (T, C, S, S)) for i, t in enumerate((800, 600, 400, 200, 0))]

    class Stop(Exception):
        pass

    def cancel(step, t, x0):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        run(y, TemporalPSF(3), nfe=5, callback=cancel)
    assert torch.equal(y, y_copy)


def test_progress_bar_ticks_once_per_nfe(monkeypatch, capsys):
    import svimg.sampling.dds as dds

    bars = []

    def spy(enabled, total, desc):
        bars.append(dds_progress(enabled, total, desc))
        return bars[-1]

    dds_progress = dds.progress_bar
    monkeypatch.setattr(dds, "progress_bar", spy)
    run(rand(T, C, S, S), Identity(), nfe=4, progress=True)
    assert [(b.n, b.total) for b in bars] == [(4, 4)]
    assert "svimg.sample" in capsys.readouterr().err


# channels ------------------------------------------------------------------------------------
def test_single_channel_runs_through_a_three_channel_prior_by_replication():
    y = svimg.forward_op(rand(T, S, S), TemporalPSF(3))  # (T, H, W)
    x3 = run(y, TemporalPSF(3), GaussianPrior(channels=3))
    x1 = run(y, TemporalPSF(3), GaussianPrior(channels=1))
    assert x3.shape == (T - 2, S, S)  # the frames aligned with y's ("valid" PSF of 3 taps)
    # A pixelwise prior predicts the same noise for every replicated channel: the average is the 1-channel answer.
    torch.testing.assert_close(x3, x1, rtol=0, atol=1e-5)


@pytest.mark.parametrize("data_c, prior_c", [(3, 1), (2, 3)])
def test_prior_channels_that_do_not_fit_raise(data_c, prior_c):
    with pytest.raises(ValueError, match=f"prior takes {prior_c} channel"):
        run(rand(T, data_c, S, S), Identity(), GaussianPrior(channels=prior_c))


def test_prior_none_loads_the_bundled_prior(monkeypatch):
    import svimg.priors

    monkeypatch.setattr(svimg.priors, "bundled", lambda: GaussianPrior(std=0.3), raising=False)
    xr = pytest.importorskip("xarray")
    y = xr.DataArray(rand(T, C, S, S).numpy(), dims=("t", "c", "y", "x"))
    x = sample(y, Identity(), nfe=2, seed=0, progress=False)
    assert "std=0.3" in x.attrs["svimg_parameters"]


# the equations -------------------------------------------------------------------------------
def _hand_cg(op, y, x0, n, gamma=None):
    """CG on A^T A x = A^T y (or (I + g A^T A) x = x0 + g A^T y), transcribed from the textbook."""
    H = (lambda v: op.adjoint(op.forward(v))) if gamma is None else (lambda v: v + gamma * op.adjoint(op.forward(v)))
    b = op.adjoint(y) if gamma is None else x0 + gamma * op.adjoint(y)
    x = x0.clone()
    r = b - H(x)
    p = r.clone()
    for _ in range(n):
        if float(r.norm()) < 1e-5:
            break
        Hp = H(p)
        alpha = float((r * r).sum() / (p * Hp).sum())
        x = x + alpha * p
        r_new = r - alpha * Hp
        p = r_new + float((r_new * r_new).sum() / (r * r).sum()) * p
        r = r_new
    return x


@pytest.mark.parametrize("gamma", [None, 0.7])
def test_one_step_matches_a_transcription_of_the_design(gamma):
    op = GaussianBlur(3, 1.0) @ TemporalPSF(3, boundary="zero")
    y = op.forward(rand(T, C, S, S, dtype=torch.float64))
    x = torch.randn(T, C, S, S, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z = torch.randn(1, C, S, S, generator=torch.Generator().manual_seed(2), dtype=torch.float64).repeat(T, 1, 1, 1)
    prior = GaussianPrior(mean=0.1, std=0.4, dtype=torch.float64)
    schedule = DDSSchedule(20, prior.betas)
    t, t_next, eta = 700, 650, 0.15

    got, got_x0 = dds_step(x, t, t_next, eps_fn=lambda v, s: prior.eps(v, torch.full((v.shape[0],), s)),
                           data_fn=lambda v, s: data_step(op, y, v, 5, gamma), schedule=schedule, eta=eta, z=z)

    a = float(torch.prod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)[: t + 1]))
    a_next = float(torch.prod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)[: t_next + 1]))
    eps = math.sqrt(1 - a) * (x - math.sqrt(a) * 0.1) / (a * 0.4**2 + 1 - a)
    x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
    x0_hat = 2 * _hand_cg(op, y, (x0 + 1) / 2, 5, gamma) - 1
    c1, c2 = math.sqrt(1 - a_next) * eta, math.sqrt(1 - a_next) * math.sqrt(1 - eta**2)
    want = math.sqrt(a_next) * x0_hat + c1 * z + c2 * eps
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    torch.testing.assert_close(got_x0, (x0_hat + 1) / 2, rtol=0, atol=1e-10)


def test_full_run_matches_a_transcription_with_the_same_draws():
    op = TemporalPSF(3, boundary="reflect")
    y = op.forward(rand(T, C, S, S, dtype=torch.float64))
    prior = GaussianPrior(std=0.5, dtype=torch.float64)
    eta = 0.5
    got = sample(y, op, prior, nfe=4, eta=eta, seed=9, noise_std=None, progress=False)

    g = torch.Generator().manual_seed(9)
    draw = lambda: torch.randn(1, C, S, S, generator=g, dtype=torch.float64).repeat(T, 1, 1, 1)  # noqa: E731
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
    x = draw()
    for t, t_next in [(750, 500), (500, 250), (250, 0), (0, -1)]:
        a = float(ab[t])
        eps = math.sqrt(1 - a) * x / (a * 0.25 + 1 - a)
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        x01 = _hand_cg(op, y, (x0 + 1) / 2, 5)
        if t_next > 0:
            an = float(ab[t_next])
            x = math.sqrt(an) * (2 * x01 - 1) + math.sqrt(1 - an) * (eta * draw() + math.sqrt(1 - eta**2) * eps)
        else:
            x = 2 * x01 - 1
    torch.testing.assert_close(got, x01.clamp(0, 1), rtol=0, atol=1e-10)


# the gradient-descent ablation ---------------------------------------------------------------
def test_steepest_descent_uses_exact_line_search_and_is_slower_than_cg():
    M = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    x0 = torch.zeros(3, dtype=torch.float64)
    x1, hist = steepest_descent(lambda v: M @ v, b, x0, 1)
    r = b - M @ x0
    torch.testing.assert_close(x1, x0 + (r @ r) / (r @ M @ r) * r)
    x_gd, h_gd = steepest_descent(lambda v: M @ v, b, x0, 3)
    assert all(h1 < h0 for h0, h1 in zip(h_gd, h_gd[1:]))
    exact = torch.linalg.solve(M, b)
    from svimg.solvers import conjugate_gradient

    x_cg, _ = conjugate_gradient(lambda v: M @ v, b, x0, 3, tol=0)
    assert float((x_cg - exact).norm()) < 1e-10 < float((x_gd - exact).norm())


def test_gd_solver_runs_and_differs_from_cg():
    op = TemporalPSF(5, boundary="zero")
    y = op.forward(rand(T, C, S, S))
    gd, cg = run(y, op, solver="gd", nfe=5), run(y, op, solver="cg", nfe=5)
    assert not torch.allclose(gd, cg)
    assert residual(gd, op, y) > residual(cg, op, y)


# validation ---------------------------------------------------------------------------------
Y = rand(T, C, S, S)


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"nfe": 0}, ValueError, "nfe"),
    ({"nfe": 1001}, ValueError, "nfe must be in 1..1000"),
    ({"eta": -0.1}, ValueError, "eta must lie in"),
    ({"eta": 1.5}, ValueError, "eta must lie in"),
    ({"cg_iters": -1}, ValueError, "cg_iters"),
    ({"noise": "shared"}, ValueError, "noise must be one of .* got 'shared'"),
    ({"solver": "adam"}, ValueError, "solver must be one of .* got 'adam'"),
    ({"gamma": -1.0}, ValueError, "gamma"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"seed": -3}, ValueError, "seed"),
    ({"seed": 1, "generator": torch.Generator()}, ValueError, "either seed or generator"),
    ({"x_T": torch.zeros(2, C, S, S)}, ValueError, "x_T must have shape"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"progress": "yes"}, TypeError, "progress"),
    ({"callback": 3}, TypeError, "callback"),
])
def test_bad_arguments_raise_naming_the_parameter(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        run(Y, Identity(), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        run(Y, Identity(), device="cuda")


def test_nan_measurement_and_wrong_shape_raise():
    bad = Y.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains 1 non-finite"):
        run(bad, Identity())
    with pytest.raises(ValueError, match="y of shape"):
        run(Y, Mask(torch.ones(4, 4)))
    with pytest.raises(TypeError, match="op must be"):
        run(Y, "blur")


def test_noise_modes_share_the_initial_draw_as_documented():
    # nfe=1 is the single step (0, -1): no re-noising, so the output is a function of x_T alone.
    y = torch.zeros(4, C, S, S)
    frames_equal = {}
    for noise in ("batch", "initial", "independent"):
        x = run(y, Identity(), nfe=1, cg_iters=0, noise=noise)
        frames_equal[noise] = bool(torch.equal(x, x[:1].expand_as(x)))
    assert frames_equal == {"batch": True, "initial": True, "independent": False}


def test_sample_is_the_package_level_function():
    assert svimg.sample is sample


def test_bundled_prior_end_to_end():
    import svimg.priors

    try:
        prior = svimg.priors.bundled()
    except FileNotFoundError:
        pytest.skip("the bundled prior's weights are not installed")
    op = TemporalPSF(3, boundary="circular")
    y = svimg.forward_op(rand(3, 1, 16, 16), op)
    x = sample(y, op, nfe=2, seed=0, noise_std=None, progress=False, device="cpu")  # prior=None -> bundled
    assert x.shape == (3, 1, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    from svimg.baselines import dps

    assert torch.isfinite(dps(y, op, prior, nfe=2, seed=0, progress=False)).all()
