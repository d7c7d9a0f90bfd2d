"""A real ``svimg restore`` subprocess interrupted mid-run by SIGINT or SIGTERM.

The command runs on a tiny input with a tiny prior (a few-kilobyte ADM checkpoint) and enough
diffusion steps to take several seconds; the signal is sent once the sampler has visibly started
(a progress tick on stderr, or a first committed window in the store).  Expected: a non-zero exit
status (130) with one "interrupted" line and no traceback, and either no output at all (plain run:
nothing left, no temporary) or a windowed store that is marked unfinished and that rerunning the
same command completes, with the same result as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import svimg.io
from svimg.ops import TemporalPSF
from svimg.sampling.windows import PROGRESS_KEY, sample_windowed, store_is_complete
from test_robustness import tiny_prior_checkpoint, video

SVIMG = shutil.which("svimg", path=str(Path(sys.executable).parent))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
pytestmark = pytest.mark.skipif(SVIMG is None, reason="the svimg console script is not installed")


def _default_sigint():
    """In the child: Ctrl-C handling as in a terminal, even when pytest itself runs in the background
    (a shell starts background jobs with SIGINT ignored, and exec keeps ignored signals ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """``svimg ARGV`` in a subprocess, its stderr collected by a thread while the test polls."""

    def __init__(self, argv: list):
        self.proc = subprocess.Popen([SVIMG, *map(str, argv)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=ENV, preexec_fn=_default_sigint)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def wait_until(self, started, timeout: float = 180.0):
        """Poll ``started()`` until true; fail if the process ends first or nothing happens in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not started():
            ended = self.proc.poll()
            assert ended is None, f"svimg ended (status {ended}) before the signal:\n{self.stderr}"
            assert time.monotonic() < deadline, f"svimg did not start within {timeout} s:\n{self.stderr}"
            time.sleep(0.02)

    def finish(self, sig=None, timeout: float = 120.0) -> tuple[int, str]:
        try:
            if sig is not None:
                self.proc.send_signal(sig)
            status = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(10)
        return status, self.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interrupt-inputs")
    y = svimg.io.save(svimg.forward_op(video((8, 16, 16)), TemporalPSF(2)), folder / "y.zarr")
    return y, tiny_prior_checkpoint(folder / "tiny.pt")


def _assert_interrupted(status: int, err: str):
    assert status == 130, err
    assert "interrupted" in err and "Traceback" not in err, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_restore_leaves_no_output(sig, inputs, tmp_path):
    y, prior = inputs
    out = tmp_path / "x.zarr"
    run = Run(["restore", y, out, "--op", "temporal:uniform:2", "--nfe", "1000", "--prior", f"adm:{prior}"])
    tick = re.compile(r"\|\s*([1-9]\d*)/1000")  # tqdm: at least one prior evaluation done
    try:
        run.wait_until(lambda: tick.search(run.stderr))
    finally:
        status, err = run.finish(sig)
    _assert_interrupted(status, err)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary


def _windows_done(store: Path) -> int:
    try:
        meta = json.loads((store / "0" / "zarr.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not created yet, or being rewritten
        return 0
    return meta.get("attributes", {}).get(PROGRESS_KEY, {}).get("windows_done", 0)


def test_interrupted_windowed_restore_is_marked_unfinished_and_resumes(inputs, tmp_path):
    y, prior = inputs
    out = tmp_path / "x.zarr"
    argv = ["restore", y, out, "--op", "temporal:uniform:2", "--window", "4", "--nfe", "100", "--prior", f"adm:{prior}",
            "--seed", "7"]  # 8 frames, windows of 4 overlapping by 2: 3 windows
    run = Run(argv)
    try:
        run.wait_until(lambda: _windows_done(out) >= 1)
    finally:
        status, err = run.finish(signal.SIGTERM)
    _assert_interrupted(status, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.zarr"]  # the store only, no temporary
    assert not store_is_complete(out)
    done = _windows_done(out)
    assert 1 <= done < 3
    record = svimg.io.load(out).attrs[PROGRESS_KEY]
    assert record["complete"] is False and record["windows_done"] == done

    status, err = Run(["-q", *argv]).finish()  # the same command again: resumes where it stopped
    assert status == 0, err
    assert store_is_complete(out)
    resumed = svimg.io.load(out)
    assert resumed.attrs[PROGRESS_KEY]["complete"] is True
    reference = sample_windowed(svimg.io.load(y), TemporalPSF(2), f"adm:{prior}", window=4, seed=7, nfe=100,
                                progress=False)
    np.testing.assert_allclose(resumed.values, reference.values, atol=1e-5)
