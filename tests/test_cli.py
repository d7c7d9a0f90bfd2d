"""The installed ``svimg`` command, end to end in subprocesses, on tiny inputs with the bundled prior."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import pytest

from svimg import io, metrics
from svimg.data import cells
from svimg.priors.loaders import BUNDLED_FLIPS

SVIMG = shutil.which("svimg", path=str(Path(sys.executable).parent))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def svimg(*argv, check=True, timeout=300):
    proc = subprocess.run([SVIMG, *map(str, argv)], capture_output=True, text=True, env=ENV, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_console_script_is_installed():
    assert SVIMG is not None, "the svimg console script is not installed next to the Python interpreter"
    proc = svimg("--help")
    for command in ("degrade", "restore", "evaluate", "demo"):
        assert command in proc.stdout


def test_degrade_restore_evaluate(tmp_path):
    truth = io.save(cells(frames=4, size=16, seed=0, photons=None, read_noise=0.0), tmp_path / "truth.zarr")
    svimg("-q", "degrade", truth, tmp_path / "y.tif", "--op", "temporal:uniform:3", "--op", "spatial:sr:2",
          "--noise", "0.01")
    svimg("-q", "restore", tmp_path / "y.tif", tmp_path / "x.zarr", "--nfe", "2", "--seed", "3", "--smooth-t", "0.5",
          "--cg-rtol", "0.01")
    x = io.load(tmp_path / "x.zarr")
    assert x.dims == ("t", "y", "x") and x.shape == (2, 16, 16)  # 4 frames hold 2 complete exposures of 3
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    params = json.loads(x.attrs["svimg_parameters"])
    assert params["noise_std"] == 0.01 and params["noise_std_estimated"] is False  # the level degrade recorded
    assert params["nfe"] == 2 and params["seed"] == 3 and params["prior_flips"] == BUNDLED_FLIPS  # the bundled prior's default
    assert params["smooth_t"] == 0.5 and params["cg_rtol"] == 0.01
    assert "sha256" in json.dumps(x.attrs).lower()  # the prior's weights are identified
    assert x.attrs["svimg_op_spec"] == "temporal:uniform:3, spatial:sr:2"
    centre = io.save(io.load(truth).isel(t=slice(1, 3)), tmp_path / "centre.zarr")  # each exposure's centre frame
    result = json.loads(svimg("evaluate", tmp_path / "x.zarr", centre, "--json").stdout)
    expected = metrics.evaluate(x, io.load(centre))
    for key in ("psnr", "ssim", "temporal_consistency"):
        assert result[key] == pytest.approx(expected[key])
    uncut = svimg("evaluate", tmp_path / "x.zarr", truth, "--json")  # the 4 sharp frames: cut to the 2 centres
    assert json.loads(uncut.stdout) == result and "frames 1:3" in uncut.stderr


def test_bad_argument_is_one_line_without_traceback(tmp_path):
    proc = svimg("degrade", tmp_path / "none.zarr", tmp_path / "y.zarr", "--op", "temporal:uniform:3:sideways",
                 check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("svimg: error: bad operator spec")


def test_sigterm_during_restore_leaves_no_output(tmp_path):
    y = io.save(cells(frames=4, size=16, seed=1), tmp_path / "y.zarr")
    proc = subprocess.Popen([SVIMG, "restore", str(y), str(tmp_path / "x.zarr"), "--op", "temporal:uniform:3",
                             "--nfe", "1000"], stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        for line in proc.stderr:  # wait until the sampler runs
            if line.startswith("svimg: restoring"):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.zarr"]  # no x.zarr, no temporary


def test_demo(tmp_path):
    out = tmp_path / "demo"
    proc = svimg("-q", "demo", "--out", out, "--frames", "4", "--size", "16", "--nfe", "2", "--cg-iters", "2",
                 "--prior-flips", "1")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("svimg demo: carphone, frames 0:4 16x16")
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert set(rows) == {"degraded", "CG", "svimg"} and all(len(v) == 3 for v in rows.values())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["prior"] == "bundled" and saved["prior_flips"] == 1
    assert float(rows["svimg"][0]) == pytest.approx(saved["metrics"]["svimg"]["psnr"], abs=0.01)
    png = iio.imread(out / "demo.png")
    assert png.ndim == 3 and png.shape[0] > 4 * 128  # four rows of frames shown at >= 128 px
    assert set(saved["crop"]) == {"top", "left", "side"} and saved["crop"]["side"] == 8  # half of the 16 px frames
    movie = io.load(out / "demo.mp4")
    assert movie.sizes["t"] == 4 and movie.sizes["c"] == 3
    truth, cg = io.load(out / "truth.zarr"), io.load(out / "cg.zarr")
    assert truth.shape == cg.shape == (4, 3, 16, 16)
    assert metrics.psnr(cg, truth) == pytest.approx(saved["metrics"]["CG"]["psnr"])
    degraded = io.load(out / "degraded.zarr")
    assert degraded.attrs["svimg_op_spec"] == "temporal:uniform:13:circular"  # the default demo degradation
    assert json.loads(degraded.attrs["svimg_parameters"])["noise"] == 0.02
