"""Priors: ADM network (exact checkpoint layout), checkpoint loading and errors, the prior protocol."""

import math
from pathlib import Path

import pytest
import torch

import svimg.priors as priors
from svimg.priors import ADM256_UNCOND, ADMUNet, NetworkPrior
from svimg.priors.adm import _Attention
from svimg.priors.loaders import check_state_dict


KEYS_TSV = Path(__file__).parent / "data" / "adm256_uncond_state_dict_keys.tsv"

# A tiny ADM: two levels, attention at the lower one, learned sigma (2C outputs).
TINY = dict(image_size=16, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
            attention_resolutions=(8,), channel_mult=(1, 2), num_head_channels=32)


def _tiny_checkpoint(tmp_path, seed=0, **overrides):
    torch.manual_seed(seed)
    net = ADMUNet(**{**TINY, **overrides})
    for p in net.parameters():  # zero-initialised output convs would hide errors: randomise everything
        torch.nn.init.normal_(p, std=0.05)
    path = tmp_path / "tiny.pt"
    torch.save(net.state_dict(), path)
    return net, path


def test_adm256_state_dict_matches_the_public_checkpoint_exactly():
    expected = []
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        expected.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    with torch.device("meta"):
        net = ADMUNet(**ADM256_UNCOND)
    got = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    assert got == expected
    assert len(got) == 566
    assert sum(math.prod(s) for _, s in got) == 552_814_086


def test_legacy_attention_matches_the_explicit_formula():
    torch.manual_seed(1)
    att = _Attention(64, num_heads=2, groups=32)
    for p in att.parameters():
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(3, 64, 4, 5)
    b, c, length, heads, d = 3, 64, 20, 2, 32
    qkv = att.qkv(att.norm(x.reshape(b, c, length)))
    # legacy layout: per head, rows [q; k; v] of d channels each
    q, k, v = qkv.reshape(b * heads, 3 * d, length).split(d, dim=1)
    w = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(d), dim=-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, length)
    ref = (x.reshape(b, c, length) + att.proj_out(a)).reshape(x.shape)
    torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-5)


def test_adm_loads_a_saved_random_model_strictly_and_eps_is_first_c_channels(tmp_path):
    net, path = _tiny_checkpoint(tmp_path)
    prior = priors.adm(path, **TINY)
    assert isinstance(prior, NetworkPrior)
    assert prior.channels == 3 and prior.dtype == torch.float32
    assert prior.betas.dtype == torch.float64 and prior.betas.shape == (1000,)
    torch.testing.assert_close(prior.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert prior.sha256 == priors.base.file_sha256(path) and len(prior.sha256) == 64
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    t = torch.tensor([3, 700])
    out = prior.eps(x, t)
    torch.testing.assert_close(out, net.eval()(x, t)[:, :3])
    assert not torch.equal(out, net(x, t)[:, 3:])


def test_eps_pads_any_size_and_crops_back(tmp_path):
    _, path = _tiny_checkpoint(tmp_path)
    prior = priors.adm(path, **TINY)
    x = torch.rand(2, 3, 13, 10, dtype=torch.float64) * 2 - 1
    out = prior.eps(x, torch.tensor([10, 10]))
    assert out.shape == x.shape and out.dtype == torch.float64
    # equals running the network on the reflect-padded input (multiple 2) and cropping
    padded = torch.nn.functional.pad(x.float(), (0, 0, 0, 1), mode="reflect")
    torch.testing.assert_close(out.float(), prior.net(padded, torch.tensor([10, 10]))[:, :3, :13, :10])
    assert torch.equal(x, x.clone())  # inputs are not mutated (pad makes a copy)


@pytest.mark.parametrize("flips", [2, 4])
def test_flips_average_the_network_over_mirror_images(tmp_path, flips):
    """eps = (1/|G|) sum_g g eps_theta(g x): equals the explicit mean, and is equivariant under G."""
    _, path = _tiny_checkpoint(tmp_path)
    plain, mirrored = priors.adm(path, **TINY), priors.adm(path, flips=flips, **TINY)
    assert mirrored.flips == flips and plain.flips == 1 and f"flips={flips}" in repr(mirrored)
    x, t = torch.rand(2, 3, 13, 10) * 2 - 1, torch.tensor([10, 700])
    mirrors = [(), (-1,), (-2,), (-2, -1)][:flips]
    expected = sum(plain.eps(x.flip(a), t).flip(a) if a else plain.eps(x, t) for a in mirrors) / flips
    torch.testing.assert_close(mirrored.eps(x, t), expected)
    assert not torch.allclose(expected, plain.eps(x, t), atol=1e-3)  # the random network is not symmetric
    for axes in mirrors[1:]:
        torch.testing.assert_close(mirrored.eps(x.flip(axes), t), mirrored.eps(x, t).flip(axes))


@pytest.mark.parametrize("flips", [0, 3, True, 2.0, "4", "cycles"])
def test_bad_flips_name_the_parameter(tmp_path, flips):
    _, path = _tiny_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"flips must be 1, 2 or 4 \(mirror images averaged\) or 'cycle'"):
        priors.adm(path, flips=flips, **TINY)


@pytest.mark.parametrize(
    "bad, err",
    [
        (lambda p: p.eps(torch.zeros(1, 1, 8, 8), torch.tensor([0])), ValueError),
        (lambda p: p.eps(torch.zeros(2, 3, 8, 8), torch.tensor([0])), ValueError),
        (lambda p: p.eps(torch.zeros(1, 3, 8, 8), torch.tensor([1000])), ValueError),
        (lambda p: p.eps(torch.zeros(1, 3, 8, 8), torch.tensor([0.5])), ValueError),
        (lambda p: p.eps(torch.zeros(1, 3, 8, 8, dtype=torch.int64), torch.tensor([0])), TypeError),
    ],
)
def test_eps_rejects_bad_input(tmp_path, bad, err):
    _, path = _tiny_checkpoint(tmp_path)
    with pytest.raises(err):
        bad(priors.adm(path, **TINY))


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        priors.adm(tmp_path / "nope.pt")


def test_truncated_checkpoint_names_the_file(tmp_path):
    _, path = _tiny_checkpoint(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        priors.adm(bad, **TINY)


def test_mismatched_checkpoint_names_file_first_key_and_expected_shape(tmp_path):
    _, path = _tiny_checkpoint(tmp_path, model_channels=64)
    with pytest.raises(ValueError) as info:
        priors.adm(path, **TINY)
    msg = str(info.value)
    assert "tiny.pt" in msg and "'time_embed.0.weight'" in msg and "(128, 32)" in msg and "(256, 64)" in msg


def test_missing_and_unexpected_keys_are_reported():
    net = ADMUNet(**TINY)
    state = dict(net.state_dict())
    first = next(iter(state))
    del state[first]
    with pytest.raises(ValueError, match=f"'{first}': missing"):
        check_state_dict(net, state, "f.pt")
    state = dict(net.state_dict(), extra=torch.zeros(1))
    with pytest.raises(ValueError, match="'extra': not in the model"):
        check_state_dict(net, state, "f.pt")


def test_the_256_config_is_the_default(tmp_path):
    # a tiny checkpoint loaded without config is checked against the 256 model and rejected
    _, path = _tiny_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="expected shape \\(1024, 256\\)"):
        priors.adm(path)


def test_load_spec_strings(tmp_path):
    net, _ = _tiny_checkpoint(tmp_path)
    path = tmp_path / "with_config.pt"  # svimg's own format carries the config and schedule
    torch.save({"config": TINY, "state_dict": {k: v.half() for k, v in net.state_dict().items()},
                "schedule": {"kind": "linear", "beta_start": 1e-4, "beta_end": 0.03, "steps": 500}}, path)
    prior = priors.load(f"adm:{path}")
    assert prior.name == "adm:with_config.pt" and len(prior.betas) == 500
    assert float(prior.betas[-1]) == pytest.approx(0.03)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        priors.load(f"adm:{tmp_path / 'missing.pt'}")
    for spec in ["", "adm", "adm:", "bundle", "hub:foo", "diffusers"]:
        with pytest.raises(ValueError, match="spec"):
            priors.load(spec)
    with pytest.raises(TypeError, match="spec"):
        priors.load(3)


def test_missing_bundled_weights_is_a_clear_error(monkeypatch, tmp_path):
    from svimg.priors import loaders

    monkeypatch.setattr(loaders, "_bundled_resource", lambda: tmp_path / "absent.pt")
    loaders.bundled.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="bundled prior's weights"):
            priors.bundled()
    finally:
        loaders.bundled.cache_clear()


def test_bundled_prior_loads_and_is_cached():
    prior = priors.bundled()
    assert prior is priors.bundled() and priors.load("bundled") is prior
    assert prior.channels == 3 and prior.name == "svimg-bundled" and len(prior.sha256) == 64
    torch.testing.assert_close(prior.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    x = torch.zeros(1, 3, 20, 24)
    e = prior.eps(x, torch.tensor([500]))
    assert e.shape == x.shape and torch.isfinite(e).all()
    assert prior.flips == priors.loaders.BUNDLED_FLIPS == "cycle" and prior.calls_per_eps == 1
    averaged = priors.load("bundled", flips=4)
    assert averaged.flips == 4 and averaged is priors.load("bundled", flips=4) and prior.flips == "cycle"  # cached apart
    with pytest.raises(AttributeError):
        prior.flips = 1


def test_timestep_for_sigma_matches_noise_to_signal_ratio():
    betas = priors.linear_betas()
    a = priors.alphas_cumprod(betas)
    for sigma in (0.1, 0.2, 0.4):
        t = priors.timestep_for_sigma(betas, sigma)
        ratio = ((1 - a) / a).sqrt()
        assert abs(ratio[t] - sigma) <= min(abs(ratio[t - 1] - sigma), abs(ratio[t + 1] - sigma))


def test_priors_do_not_import_the_sampler(tmp_path):
    """Device resolution lives in svimg._device, below both: loading and moving a prior never imports sampling."""
    import subprocess
    import sys

    from test_robustness import tiny_prior_checkpoint

    path = tiny_prior_checkpoint(tmp_path / "tiny.pt")
    code = ("import sys, svimg.priors as p; prior = p.adm(sys.argv[1]).to('auto'); prior.eps("
            "__import__('torch').zeros(1, 1, 8, 8), 3); assert 'svimg.sampling' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_flips_cycle_takes_one_mirror_per_timestep(tmp_path):
    """flips="cycle": one network call with mirror k of the current descent; k advances when t falls,
    stays for the same t (frames of one step in several batches) and restarts when t rises."""
    _, path = _tiny_checkpoint(tmp_path)
    plain, cycle = priors.adm(path, **TINY), priors.adm(path, flips="cycle", **TINY)
    assert cycle.flips == "cycle" and cycle.calls_per_eps == 1 and plain.calls_per_eps == 1
    x = torch.rand(2, 3, 13, 10) * 2 - 1
    mirrors = [(), (-1,), (-2,), (-2, -1)]

    def mirrored(axes, t):
        return plain.eps(x.flip(axes), t).flip(axes) if axes else plain.eps(x, t)

    steps = [900, 900, 600, 300, 200, 100, 0]
    expected = [0, 0, 1, 2, 3, 0, 1]
    for t, k in zip(steps, expected):
        torch.testing.assert_close(cycle.eps(x, torch.tensor([t, t])), mirrored(mirrors[k], torch.tensor([t, t])))
    first = cycle.eps(x, torch.tensor([900, 900]))  # t rose: a new run starts at the identity again
    torch.testing.assert_close(first, plain.eps(x, torch.tensor([900, 900])))


def test_flips_cycle_run_does_not_depend_on_an_earlier_call_at_a_larger_t(tmp_path):
    """A seeded sample with a "cycle" prior is the same after a stray eps call (a forecast's timing call at a
    larger t, say): every sampler run restarts the cycle (NetworkPrior.start_descent)."""
    import svimg

    _, path = _tiny_checkpoint(tmp_path)
    cycle = priors.adm(path, flips="cycle", **TINY)
    op = svimg.ops.TemporalPSF(3)
    y = op.forward(torch.rand(6, 3, 16, 16))
    fresh = svimg.sample(y, op, cycle, nfe=4, seed=0, progress=False)
    cycle.eps(torch.zeros(1, 3, 16, 16), torch.tensor([999]))  # t above the run's first step, 750
    torch.testing.assert_close(svimg.sample(y, op, cycle, nfe=4, seed=0, progress=False), fresh)
