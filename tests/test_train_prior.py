"""``svimg train-prior`` / ``svimg.priors.train_prior``: a tiny run end to end, resume, grey stacks, bad inputs."""

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import svimg
import svimg.io
import svimg.priors
from svimg.ops import TemporalPSF
from svimg.priors import train_prior
from svimg.priors.user_training import run_dir_for
from test_robustness import run_cli, snapshot, unwritable_folder

TINY = ["--width", "8", "--size", "16", "--batch-size", "2"]  # a 0.1 M-parameter network: steps take milliseconds
TINY_KW = dict(width=8, size=16, batch_size=2, progress=False)


def _images(folder, shapes, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, shape in enumerate(shapes):
        iio.imwrite(folder / f"{i}.png", (rng.random(shape) * 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-step RGB prior trained through the command line on a folder of three PNGs."""
    root = tmp_path_factory.mktemp("train")
    folder = _images(root / "photos", [(24, 32, 3), (40, 28, 3), (20, 20, 3)])
    out = root / "mine.pt"
    rc, err = run_cli(["train-prior", folder, out, "--steps", "3", *TINY])
    assert rc == 0, err
    return out


def test_tiny_run_writes_a_prior_that_restores(trained, tmp_path):
    run = run_dir_for(trained)
    assert run.name == "mine.pt.run" and sorted(p.name for p in run.iterdir()) == \
        ["ckpt_0000003.pt", "config.json", "loss.csv"]
    assert not [p for p in trained.parent.iterdir() if p.name.startswith(".svimg-tmp")]
    prior = svimg.priors.load(str(trained))  # a plain path is a spec, as "adm:PATH"
    assert prior.channels == 3 and prior.config["model_channels"] == 8 and prior.config["attention_window"] == 8
    state = torch.load(run / "ckpt_0000003.pt", weights_only=False)
    torch.testing.assert_close(prior.net.out[2].weight, state["ema"]["out.2.weight"].half().float())

    y = np.random.default_rng(0).random((3, 3, 16, 16)).astype(np.float32)
    kw = dict(nfe=2, seed=0, progress=False)
    by_path = svimg.sample(y, TemporalPSF(3), prior=str(trained), **kw)
    assert by_path.shape == y.shape and np.isfinite(by_path).all()
    np.testing.assert_array_equal(by_path, svimg.sample(y, TemporalPSF(3), prior=f"adm:{trained}", **kw))
    np.testing.assert_array_equal(by_path, svimg.sample(y, TemporalPSF(3), prior=trained, **kw))  # a Path object

    svimg.io.save(y, tmp_path / "y.zarr")
    rc, err = run_cli(["restore", tmp_path / "y.zarr", tmp_path / "x.npy", "--op", "temporal:uniform:3",
                       "--prior", trained, "--nfe", "2", "--seed", "0"])
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), by_path)


def test_resume_continues_from_the_checkpoint(tmp_path):
    """3 steps then 2 resumed ones give exactly the weights of 5 steps in one go."""
    folder = _images(tmp_path / "imgs", [(24, 24, 3), (32, 20, 3)])
    once = train_prior(folder, tmp_path / "once.pt", steps=5, **TINY_KW)
    twice = tmp_path / "twice.pt"
    train_prior(folder, twice, steps=3, **TINY_KW)
    with pytest.raises(FileExistsError, match="already exists; pass resume=True"):
        train_prior(folder, twice, steps=5, **TINY_KW)
    train_prior(folder, twice, steps=5, resume=True, progress=False)  # network, crop and batch from the run
    rows = list(csv.DictReader(open(run_dir_for(twice) / "loss.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    a, b = (torch.load(p, weights_only=True) for p in (once, twice))
    assert a["training"]["step"] == b["training"]["step"] == 5
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    with pytest.raises(ValueError, match="width=16 differs from the resumed run's width 8"):
        train_prior(folder, twice, steps=6, resume=True, width=16, progress=False)


def test_min_region_reaches_the_crops_and_is_kept_on_resume(tmp_path, monkeypatch):
    import svimg.priors.train as training

    seen = []
    real = training.random_crops

    def recording(pools, n, crop, gen, weights, min_region):
        seen.append((crop, min_region))
        return real(pools, n, crop, gen, weights, min_region)

    monkeypatch.setattr(training, "random_crops", recording)
    folder = _images(tmp_path / "imgs", [(40, 40, 3)])
    out = tmp_path / "p.pt"
    rc, err = run_cli(["train-prior", folder, out, "--steps", "2", "--min-region", "8", *TINY])
    assert rc == 0, err
    train_prior(folder, out, steps=3, resume=True, progress=False)  # the run's min_region unless given
    assert seen == [(16, 8)] * 3
    assert json.loads((run_dir_for(out) / "config.json").read_text())["min_region"] == 8


def test_grey_stack_gives_a_one_channel_prior_for_grey_data(tmp_path):
    stack = np.random.default_rng(3).random((4, 24, 24)).astype(np.float32)
    svimg.io.save(stack, tmp_path / "cells.tif")
    out = train_prior([tmp_path / "cells.tif"], tmp_path / "cells.pt", steps=2, **TINY_KW)
    prior = svimg.priors.load(str(out))
    assert prior.channels == 1 and prior.config["in_channels"] == prior.config["out_channels"] == 1
    op = TemporalPSF(3, boundary="circular")  # as many frames out as in
    y = svimg.forward_op(stack, op)
    x = svimg.sample(y, op, prior=str(out), nfe=2, seed=0, progress=False)
    assert x.shape == stack.shape and np.isfinite(x).all()
    grey_rgb = train_prior([tmp_path / "cells.tif"], tmp_path / "rgb.pt", steps=1, channels=3, **TINY_KW)
    assert svimg.priors.load(str(grey_rgb)).channels == 3  # --channels 3 repeats grey


def test_time_limit_stops_and_writes(tmp_path):
    folder = _images(tmp_path / "imgs", [(24, 24)])
    out = train_prior(folder, tmp_path / "p.pt", hours=1e-9, **TINY_KW)  # stops before its first step
    assert torch.load(out, weights_only=True)["training"]["step"] == 0


def test_ctrl_c_leaves_no_output(tmp_path, monkeypatch):
    import svimg.priors.train as train_module

    folder = _images(tmp_path / "imgs", [(24, 24, 3)])
    out = tmp_path / "p.pt"
    train_prior(folder, out, steps=2, **TINY_KW)
    before = out.read_bytes()
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return crops(*args, **kwargs)

    crops = train_module.random_crops
    monkeypatch.setattr(train_module, "random_crops", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_prior(folder, out, steps=9, resume=True, progress=False)
    assert out.read_bytes() == before  # OUT as it was; no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "p.pt", "p.pt.run"]


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    mixed = _images(tmp_path / "mixed", [(20, 20), (20, 20, 3)])
    ok = _images(tmp_path / "ok", [(20, 20, 3)])
    return empty, bad, mixed, ok


def test_bad_inputs_raise_one_clear_error_and_write_nothing(tmp_path):
    empty, bad, mixed, ok = _bad_inputs(tmp_path)
    readonly = unwritable_folder(tmp_path)
    (tmp_path / "exists.pt").write_bytes(b"x")
    out = tmp_path / "p.pt"
    cases = [
        (dict(sources=[empty]), ValueError, "holds no image, video or stack"),
        (dict(sources=[bad]), ValueError, f"cannot read training file {str(bad / 'broken.png')!r}"),
        (dict(sources=[mixed]), ValueError, "mixed channel counts"),
        (dict(sources=[ok], out=readonly / "p.pt"), PermissionError, "is not writable"),
        (dict(sources=[ok], out=tmp_path / "no" / "p.pt"), FileNotFoundError, "does not exist"),
        (dict(sources=[ok], out=tmp_path / "exists.pt"), FileExistsError, "already exists"),
        (dict(sources=[ok], resume=True), FileNotFoundError, "nothing to resume"),
        (dict(sources=[ok], hours=0), ValueError, "hours must be > 0, got 0"),
        (dict(sources=[ok], hours=float("nan")), TypeError, "hours must be a finite number"),
        (dict(sources=[ok], steps=0), ValueError, "steps must be an integer >= 1, got 0"),
        (dict(sources=[ok], size=12), ValueError, "size must be a multiple of 8"),
        (dict(sources=[ok], min_region=0), ValueError, "min_region must be an integer >= 1, got 0"),
        (dict(sources=[ok], min_region=17), ValueError, "min_region must be at most size=16, got 17"),
        (dict(sources=[ok], width=12), ValueError, "width must be a multiple of 8, got 12"),
        (dict(sources=[ok], batch_size=0), ValueError, "batch_size must be an integer >= 1, got 0"),
        (dict(sources=[ok], channels=2), ValueError, "channels must be 1, 3 or None"),
        (dict(sources=[ok], device="tpu"), ValueError, "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        (dict(sources=[]), TypeError, "sources must be one or more paths"),
    ]
    before = snapshot(tmp_path)
    for case, error, message in cases:
        kw = {"out": out, "steps": 1, **TINY_KW, **case}
        with pytest.raises(error) as err:
            train_prior(kw.pop("sources"), kw.pop("out"), **kw)
        assert message in str(err.value) and "\n" not in str(err.value), (case, err.value)
        assert snapshot(tmp_path) == before, case
    assert not (readonly / "p.pt").exists() and not (readonly / "p.pt.run").exists()


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    empty, bad, mixed, ok = _bad_inputs(tmp_path)
    out = tmp_path / "p.pt"
    before = snapshot(tmp_path)
    for argv, message in [
        ([empty, out], "holds no image, video or stack"),
        ([mixed, out], "pass channels=1 or 3 (--channels) to convert"),
        ([ok, out, "--hours", "0"], "hours must be > 0, got 0"),
        ([ok, out, "--size", "0"], "argument --size: expected a positive integer, got 0"),
        ([ok, out, "--min-region", "99", *TINY], "min_region must be at most size=16, got 99"),
        ([ok, out, "--channels", "2"], "argument --channels: invalid choice: 2"),
    ]:
        rc, err = run_cli(["train-prior", *argv])
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "error:" in lines[0] and message in lines[0], err
    assert snapshot(tmp_path) == before


def test_overwrite_starts_again(tmp_path):
    folder = _images(tmp_path / "imgs", [(24, 24, 3)])
    out = tmp_path / "p.pt"
    train_prior(folder, out, steps=3, **TINY_KW)
    train_prior(folder, out, steps=1, overwrite=True, **TINY_KW)
    assert sorted(p.name for p in run_dir_for(out).glob("ckpt_*")) == ["ckpt_0000001.pt"]
    (run_dir_for(out) / "mine.txt").write_text("a file of the user's")
    with pytest.raises(FileExistsError, match="holds files that training did not write"):
        train_prior(folder, out, steps=1, overwrite=True, **TINY_KW)
