"""Training loop of the bundled prior: a few steps of a tiny model, resume, export, reload."""

import csv

import pytest
import torch

import svimg.priors as priors
from svimg.priors.train import _random_crops, export_weights, latest_checkpoint, train


TINY = dict(image_size=16, in_channels=3, model_channels=16, out_channels=3, num_res_blocks=1,
            attention_resolutions=(8,), channel_mult=(1, 2), num_head_channels=16, norm_groups=8)


def _pools():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(3, 3, 24, 24, generator=g) * 2 - 1, torch.rand(5, 3, 20, 20, generator=g) * 2 - 1)


def test_random_crops_are_patches_of_the_pools_and_seeded():
    pools = _pools()
    a = _random_crops(pools, 6, 8, torch.Generator().manual_seed(1))
    b = _random_crops(pools, 6, 8, torch.Generator().manual_seed(1))
    assert a.shape == (6, 3, 8, 8) and torch.equal(a, b)
    unfolded = [p.unfold(2, 8, 1).unfold(3, 8, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 8, 8) for p in pools]
    cands = torch.cat([torch.cat([u, u.flip(-1)]) for u in unfolded])
    for patch in a:
        assert (cands - patch).abs().flatten(1).amax(1).min() == 0


def test_train_resume_export_and_load(tmp_path):
    run = tmp_path / "run"
    kw = dict(config=TINY, batch_size=2, crop=16, warmup=2, images=_pools(), progress=False, seed=3)
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
    kw = dict(batch_size=2, crop=16, images=_pools(), progress=False)
    train(tmp_path, config=TINY, max_steps=1, **kw)
    with pytest.raises(ValueError, match="differs"):
        train(tmp_path, config={**TINY, "model_channels": 32}, max_steps=2, **kw)
