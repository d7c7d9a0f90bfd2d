"""Training loop of the bundled prior: a few steps of a tiny model, resume, export, reload.

The crops themselves are tested in test_training_data.py."""

import csv

import pytest
import torch

import svimg.priors as priors
from svimg.priors.train import export_weights, latest_checkpoint, learning_rate, train


TINY = dict(image_size=16, in_channels=3, model_channels=16, out_channels=3, num_res_blocks=1,
            attention_resolutions=(8,), channel_mult=(1, 2), num_head_channels=16, norm_groups=8)


def _pools():
    """Two pools of (C, H, W) images in [0, 1] (see svimg.priors.training_data)."""
    g = torch.Generator().manual_seed(0)
    return [[torch.rand(3, 24, 24, generator=g).half() for _ in range(3)],
            [torch.rand(3, 20, 20, generator=g).half() for _ in range(5)]]


def test_train_resume_export_and_load(tmp_path):
    run = tmp_path / "run"
    kw = dict(config=TINY, batch_size=2, crop=16, warmup=2, pools=_pools(), progress=False, seed=3)
    first = train(run, max_steps=3, **kw)
    assert first.name == "ckpt_0000003.pt"
    with open(run / "loss.csv", "a") as f:  # a run killed after its checkpoint logged step 4
        f.write("4,9.0,1.0,0.1\n")
    second = train(run, max_steps=5, **kw)  # resumes at step 3, forgets the orphaned row
    assert second == latest_checkpoint(run) and second.name == "ckpt_0000005.pt"
    rows = list(csv.DictReader(open(run / "loss.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(0 < float(r["loss"]) < 9 for r in rows)
    state = torch.load(second, weights_only=False)
    assert state["step"] == 5 and not torch.equal(state["ema"]["out.2.weight"], state["model"]["out.2.weight"])

    out = tmp_path / "w.pt"
    sha = export_weights(second, out)
    prior = priors.adm(out)
    assert prior.sha256 == sha and prior.config["model_channels"] == 16
    ema = state["ema"]["out.2.weight"].half().float()
    torch.testing.assert_close(prior.net.out[2].weight, ema)
    e = prior.eps(torch.zeros(1, 3, 10, 12), torch.tensor([4]))
    assert e.shape == (1, 3, 10, 12)


def test_resume_with_another_config_is_refused(tmp_path):
    kw = dict(batch_size=2, crop=16, pools=_pools(), progress=False)
    train(tmp_path, config=TINY, max_steps=1, **kw)
    with pytest.raises(ValueError, match="differs"):
        train(tmp_path, config={**TINY, "model_channels": 32}, max_steps=2, **kw)


def test_learning_rate_warms_up_holds_and_cools_down():
    def lr(n):
        return learning_rate(n, 1e-3, warmup=4, max_steps=20, cooldown=5)

    assert [lr(n) for n in range(4)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lr(10) == lr(15) == 1e-3  # (20 - 15) / 5 = 1: the cooldown starts after step 15
    assert [lr(n) for n in range(16, 20)] == pytest.approx([8e-4, 6e-4, 4e-4, 2e-4])
    assert learning_rate(19, 1e-3, warmup=4, max_steps=20) == 1e-3  # no cooldown by default
    with pytest.raises(ValueError, match="warmup"):
        learning_rate(0, 1e-3, warmup=0, max_steps=20)
    with pytest.raises(ValueError, match="cooldown"):
        learning_rate(0, 1e-3, warmup=4, max_steps=20, cooldown=-1)


def test_cooldown_is_logged_and_resumes_on_schedule(tmp_path):
    kw = dict(config=TINY, batch_size=2, crop=16, warmup=1, cooldown=4, pools=_pools(), progress=False)
    train(tmp_path, max_steps=2, **kw)
    train(tmp_path, max_steps=6, **kw)  # resumed at step 2: the rate is that of step n of a 6-step run
    rates = [float(r["lr"]) for r in csv.DictReader(open(tmp_path / "loss.csv"))]
    assert rates[2:] == pytest.approx([4e-4 * k / 4 for k in (4, 3, 2, 1)], rel=1e-2)
