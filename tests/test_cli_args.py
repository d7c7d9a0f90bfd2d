"""The ``svimg`` command line run in-process through ``svimg.cli.main``: options, errors, parameter pass-through.

(The end-to-end runs of the installed command, in subprocesses, are in test_cli.py.)
"""

import argparse
import json

import numpy as np
import pytest

import svimg
import svimg.priors
import svimg.sampling
from svimg import io
from svimg.cli import main
from svimg.cli._parser import build_parser, frames_arg
from svimg.data import cells



def run(argv, capsys):
    """(exit status, stdout, stderr) of ``svimg ARGV``."""
    try:
        rc = main(["-q", *argv])
    except SystemExit as exit_:
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, err, match):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    assert match in lines[0], lines[0]


@pytest.fixture
def clip(tmp_path):
    return io.save(cells(frames=4, size=16, seed=0), tmp_path / "x.zarr")


def _subparsers():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, sub.choices


def test_help_documents_every_option_with_its_default():
    parser, commands = _subparsers()
    assert set(commands) == {"degrade", "restore", "evaluate", "demo", "train-prior"}
    for name, sub in commands.items():
        text = sub.format_help()
        compact = "".join(text.split())  # help lines wrap anywhere, even at hyphens
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.dest} has no help"
            if not action.option_strings:
                continue
            assert action.option_strings[-1] in text
            if action.default not in (None, False, argparse.SUPPRESS):
                assert f"(default:{action.default})".replace(" ", "") in compact, (name, action.dest)
        if name not in ("evaluate", "train-prior"):
            assert "temporal:uniform:W[:BOUNDARY]" in text  # the op grammar is in the epilog


def test_frames_argument():
    assert frames_arg("16") == 16
    assert frames_arg("4:20") == (4, 20)
    assert frames_arg(":8") == (None, 8)
    for bad in ("0", "x", "1:y"):
        with pytest.raises(argparse.ArgumentTypeError):
            frames_arg(bad)


def test_degrade_records_the_operator_and_seeded_noise(tmp_path, clip, capsys):
    for name in ("a", "b"):
        rc, _, err = run(["degrade", str(clip), str(tmp_path / f"{name}.zarr"), "--op", "temporal:uniform:3",
                          "--op", "spatial:sr:2", "--noise", "0.05", "--seed", "4"], capsys)
        assert rc == 0, err
    a, b = io.load(tmp_path / "a.zarr"), io.load(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a.values, b.values)  # same seed, same noise
    clean = svimg.forward_op(io.load(clip), svimg.cli.opspec.parse_ops("temporal:uniform:3, spatial:sr:2"))
    noise = a.values - clean.values
    assert a.shape == (2, 8, 8) and noise.std() == pytest.approx(0.05, rel=0.2)  # "valid": 4 - 3 + 1 exposures
    assert a.attrs["svimg_op_spec"] == "temporal:uniform:3, spatial:sr:2"
    params = json.loads(a.attrs["svimg_parameters"])
    assert params["noise"] == 0.05 and params["seed"] == 4


def test_restore_passes_every_sampler_option(tmp_path, clip, capsys, monkeypatch):
    loaded = []

    def load(spec, flips=None):
        loaded.append((spec, flips))
        return svimg.priors.GaussianPrior(mean=0.0, std=0.5)

    monkeypatch.setattr(svimg.priors, "load", load)
    y = tmp_path / "y.zarr"
    assert run(["degrade", str(clip), str(y), "--op", "temporal:uniform:3"], capsys)[0] == 0
    out = tmp_path / "r.zarr"
    rc, _, err = run(["restore", str(y), str(out), "--nfe", "4", "--eta", "0.5", "--cg-iters", "2", "--gamma", "2.0",
                      "--noise-mode", "initial", "--seed", "11", "--prior", "adm:/somewhere.pt", "--device", "cpu",
                      "--batch-size", "2", "--prior-flips", "2"], capsys)
    assert rc == 0, err
    assert loaded == [("adm:/somewhere.pt", 2)]
    x = io.load(out)
    assert x.shape == (2, 16, 16) and x.attrs["svimg_operation"] == "sample"  # aligned with y's 2 exposures
    params = json.loads(x.attrs["svimg_parameters"])
    assert {k: params[k] for k in ("nfe", "eta", "cg_iters", "gamma", "noise", "seed", "batch_size")} == {
        "nfe": 4, "eta": 0.5, "cg_iters": 2, "gamma": 2.0, "noise": "initial", "seed": 11, "batch_size": 2}
    assert x.attrs["svimg_op_spec"] == "temporal:uniform:3"  # taken from y, no --op given
    lines = x.attrs["history"].splitlines()  # CF history: one line per step, oldest first, none repeated
    assert [line.split(" ", 3)[3].split("(")[0] for line in lines] == ["forward_op", "degrade", "sample"]


@pytest.mark.parametrize("method, operation", [("cg", "baselines.cg_only"), ("admm-tv", "baselines.admm_tv")])
def test_restore_baselines(tmp_path, clip, capsys, method, operation):
    y = tmp_path / "y.npz"
    assert run(["degrade", str(clip), str(y), "--op", "spatial:sr:2"], capsys)[0] == 0
    rc, _, err = run(["restore", str(y), str(tmp_path / "x.tif"), "--method", method, "--nfe", "2",
                      "--cg-iters", "3"], capsys)
    assert rc == 0, err
    x = io.load(tmp_path / "x.tif")
    assert x.shape == (4, 16, 16) and x.attrs["svimg_operation"] == operation


def test_interrupted_restore_leaves_no_output(tmp_path, clip, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(svimg.sampling, "sample", interrupted)
    rc, _, err = run(["restore", str(clip), str(tmp_path / "out.zarr"), "--op", "temporal:uniform:3"], capsys)
    assert rc == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]


def test_evaluate_table_and_json(tmp_path, clip, capsys):
    rc, out, _ = run(["evaluate", str(clip), str(clip), "--per-frame"], capsys)
    assert rc == 0 and "PSNR (dB)" in out and "inf" in out and len(out.strip().splitlines()) == 2 + 1 + 4
    other = io.save(cells(frames=4, size=16, seed=1), tmp_path / "o.npy")
    rc, out, _ = run(["evaluate", str(other), str(clip), "--json"], capsys)
    result = json.loads(out)
    expected = svimg.metrics.evaluate(io.load(other), io.load(clip))
    assert result["psnr"] == pytest.approx(expected["psnr"]) and len(result["ssim_per_frame"]) == 4
    big = io.save(cells(frames=4, size=32, seed=0), tmp_path / "big.zarr")  # --size preprocesses both alike
    rc, out, _ = run(["evaluate", str(clip), str(big), "--size", "16", "--json"], capsys)
    assert json.loads(out)["psnr"] == pytest.approx(svimg.metrics.psnr(io.load(clip), io.load(big, size=16)))


@pytest.mark.parametrize("argv, match", [
    (["degrade", "{x}", "{tmp}/y.zarr", "--op", "temporal:box:3"], "bad operator spec 'temporal:box:3'"),
    (["degrade", "{tmp}/missing.zarr", "{tmp}/y.zarr", "--op", "temporal:uniform:3"], "no such file"),
    (["degrade", "{x}", "{x}", "--op", "temporal:uniform:3"], "already exists"),
    (["degrade", "{x}", "{tmp}/y.xyz", "--op", "temporal:uniform:3"], "cannot tell the format"),
    (["degrade", "{x}", "{tmp}/y.zarr"], "required: --op"),
    (["degrade", "{x}", "{tmp}/y.zarr", "--op", "spatial:sr:3"], "divisible by 3"),
    (["degrade", "{x}", "{tmp}/y.zarr", "--op", "temporal:uniform:3", "--frames", "0"], "--frames"),
    (["degrade", "{x}", "{tmp}/y.zarr", "--op", "temporal:uniform:3", "--noise", "-1"], "--noise"),
    (["restore", "{x}", "{tmp}/r.zarr"], "records no degradation operator"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--nfe", "many"], "--nfe"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--eta", "2"], "eta"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--prior", "magic"], "unknown prior"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--prior", "adm:{tmp}/none.pt"], "none.pt"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--method", "magic"], "invalid choice"),
    (["restore", "{x}", "{tmp}/r.zarr", "--op", "temporal:uniform:3", "--prior-flips", "3"],
     "argument --prior-flips: invalid choice: 3"),
    (["evaluate", "{x}", "{tmp}/half.npy"], "RESTORED and TRUTH must have the same shape"),
    (["degrade", "{x}", "{tmp}/r.webm", "--op", "temporal:uniform:3"], ".webm can be read but not written"),
    (["degrade", "{x}", "{tmp}/y.zarr", "--op", "temporal:uniform:3", "--noise", "5"], "in [0, 1] units"),
    (["evaluate", "{x}", "{x}", "--frames", "9"], "more frames"),
    (["demo", "--size", "0"], "--size"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, clip, capsys, argv, match):
    np.save(tmp_path / "half.npy", np.zeros((4, 8, 8), np.float32))
    argv = [a.format(x=clip, tmp=tmp_path) for a in argv]
    rc, _, err = run(argv, capsys)
    assert_one_line_error(rc, err, match.format(tmp=tmp_path))
    assert not (tmp_path / "y.zarr").exists() and not (tmp_path / "r.zarr").exists()


@pytest.fixture
def analytic_prior(monkeypatch):
    """`--prior-flips 1` loads the prior through svimg.priors.load: the closed-form Gaussian prior instead."""
    monkeypatch.setattr(svimg.priors, "load", lambda spec, flips=None: svimg.priors.GaussianPrior(mean=0.0, std=0.5))
    return ["--prior-flips", "1", "--nfe", "4", "--seed", "3"]


def test_restore_takes_the_noise_level_degrade_recorded(tmp_path, clip, capsys, analytic_prior):
    """No --noise-std: the --noise `svimg degrade` recorded; none: noise-free; a file without a record: the API's
    default (svimg.sample's "auto", an estimate)."""
    y = tmp_path / "y.zarr"
    assert run(["degrade", str(clip), str(y), "--op", "temporal:uniform:3", "--noise", "0.02"], capsys)[0] == 0
    for extra, expected in (([], 0.02), (["--noise-std", "none"], None), (["--noise-std", "0.05"], 0.05)):
        out = tmp_path / f"r{len(extra)}{expected}.zarr"
        rc, _, err = run(["restore", str(y), str(out), *analytic_prior, *extra], capsys)
        assert rc == 0, err
        params = json.loads(io.load(out).attrs["svimg_parameters"])
        assert params["noise_std"] == expected and params["noise_std_estimated"] is False
    rc, _, err = run(["restore", str(clip), str(tmp_path / "plain.zarr"), "--op", "temporal:uniform:3",
                      *analytic_prior], capsys)
    assert rc == 0, err
    params = json.loads(io.load(tmp_path / "plain.zarr").attrs["svimg_parameters"])
    assert params["noise_std_estimated"] is True


def test_restore_frames_of_a_valid_stack_equal_the_whole_restore(tmp_path, capsys, analytic_prior):
    """--frames START:STOP on a "valid" stack reads 2 (support - 1) measured frames of context on either side
    (12 for 7 taps), restores them with the same model and writes exactly START:STOP: the same frames as a
    whole-video restore up to what the prior decides per run (measured max 1.05e-3 here; 0.018 with 6 frames
    of context)."""
    x = io.save(cells(frames=44, size=16, seed=2), tmp_path / "x.zarr")
    y = tmp_path / "y.zarr"
    assert run(["degrade", str(x), str(y), "--op", "temporal:gaussian:1.0"], capsys)[0] == 0
    assert io.load(y).sizes["t"] == 38
    whole, part = tmp_path / "whole.zarr", tmp_path / "part.zarr"
    for out, extra in ((whole, []), (part, ["--frames", "16:21"])):
        rc, _, err = run(["restore", str(y), str(out), "--noise-std", "none", *analytic_prior, *extra], capsys)
        assert rc == 0, err
    whole, part = io.load(whole).values, io.load(part).values
    assert part.shape == (5, *whole.shape[1:])
    assert np.abs(part - whole[16:21]).max() < 3e-3
    naive = svimg.sample(io.load(y, frames=(16, 21)).values, svimg.cli.opspec.parse_ops("temporal:gaussian:1.0"),
                         svimg.priors.GaussianPrior(mean=0.0, std=0.5), nfe=4, seed=3, noise_std=None, progress=False)
    assert np.abs(naive - whole[16:21]).max() > 10 * np.abs(part - whole[16:21]).max()  # the context matters
def test_evaluate_names_the_row_after_the_scored_file(tmp_path, clip, capsys):
    y = tmp_path / "blurred.zarr"
    # circular: y keeps the clip's frame count, so it can be scored against the clip
    assert run(["-q", "degrade", str(clip), str(y), "--op", "temporal:uniform:3:circular"], capsys)[0] == 0
    rc, out, err = run(["evaluate", str(y), str(clip)], capsys)
    assert rc == 0, err
    assert out.splitlines()[1].split()[0] == "blurred.zarr"  # not always "restored"


def test_degrade_to_a_read_only_format_fails_before_reading(tmp_path, capsys, monkeypatch):
    def no_reading(*args, **kwargs):
        raise AssertionError("the input was read before the output was checked")

    monkeypatch.setattr(io, "load", no_reading)
    rc, _, err = run(["degrade", "in.zarr", str(tmp_path / "r.webm"), "--op", "temporal:uniform:3"], capsys)
    assert rc == 2 and ".webm can be read but not written" in err and ".webm," not in err.split("write one of")[1]


def test_demo_picture_crops_where_the_clip_moves():
    from svimg.cli._figure import crop, moving_box

    video = np.zeros((5, 1, 32, 32))
    for t in range(5):
        video[t, 0, 20 + t : 24 + t, 4:8] = 1.0  # a square moving down in the lower left
    top, left = moving_box(video, 12)
    assert 12 <= top <= 20 and 0 <= left <= 4  # the window holds the motion
    frames = np.arange(5 * 32 * 32 * 3, dtype=np.uint8).reshape(5, 32, 32, 3)
    assert crop(frames, (top, left, 12), 2).shape == (5, 24, 24, 3)


def test_gitignore_lists_the_demo_output_folder():
    from pathlib import Path

    (out,) = [a.default for a in _subparsers()[1]["demo"]._actions if a.dest == "out"]
    ignored = (Path(__file__).resolve().parents[1] / ".gitignore").read_text().split()
    assert f"{out}/" in ignored or out in ignored
