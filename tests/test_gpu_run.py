"""The prepared GPU run, dry-run on the CPU: ``benchmarks/gpu_run.sh --cpu-tiny`` (Triton interpreter,
tiny sizes, a few training steps, the GPU machine's missing packages hidden) ends within its budget
and leaves under a scratch $OUT only what the device tool brings back; the follow-up refuses its weights."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 600
MAX_FILES, MAX_BYTES = 8, 16 * 2**20
STAGES = ("overlay", "tests", "kernels", "e2e", "train")

pytestmark = [pytest.mark.slow, pytest.mark.triton]
pytest.importorskip("triton")


def _run(args, **kwargs):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """(wall seconds, completed process, $OUT) of one dry run."""
    tmp = tmp_path_factory.mktemp("gpu_run")
    pack, out = tmp / "pack", tmp / "out"
    built = _run([sys.executable, "scripts/build_training_pack.py", "--tiny", "--max-side", "96", "--out", str(pack)])
    assert built.returncode == 0, built.stderr
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "SVIMG_TRAIN_PACK": str(pack),
           "GPU_RUN_BUDGET_S": str(BUDGET_S), "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    proc = _run(["bash", "benchmarks/gpu_run.sh", "--cpu-tiny"], env=env, timeout=BUDGET_S + 120)
    return time.monotonic() - start, proc, out


def test_dry_run_succeeds_within_its_budget(dry_run):
    wall, proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert wall <= BUDGET_S
    summary = (out / "SUMMARY.md").read_text()
    assert "CPU dry run" in summary
    for stage in STAGES:
        assert f"- {stage}: ok" in summary


def test_out_holds_only_what_comes_back(dry_run):
    """At most 8 plain files of at most 16 MiB, no folder, names of letters, digits, '.', '_', '-'."""
    _, _, out = dry_run
    entries = list(out.iterdir())
    assert sorted(p.name for p in entries) == ["SUMMARY.md", "gpu_run_logs.tar.gz", "prior_gpu.pt"]
    assert len(entries) <= MAX_FILES
    for p in entries:
        assert p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_BYTES
        assert re.fullmatch(r"[A-Za-z0-9._-]+", p.name)


def test_tarball_holds_the_logs_and_tables(dry_run):
    _, _, out = dry_run
    with tarfile.open(out / "gpu_run_logs.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
        summary = json.load(tar.extractfile("gpu_run_logs/train_summary.json"))
    assert {"gpu_run.log", "environment.txt", "tests.xml", "train_loss.csv", "SUMMARY.md"} <= names
    assert any(n.startswith("kernels_") and n.endswith(".json") for n in names)
    assert any(n.startswith("e2e_") and n.endswith(".json") for n in names)
    assert summary["final_step"] == 8 and summary["chunks"][-1]["step"] == 8


def test_follow_up_refuses_the_dry_runs_weights(dry_run):
    """A tiny network after 8 steps is far worse than the bundled prior: refused, nothing shipped."""
    _, _, out = dry_run
    bundled = REPO / "svimg" / "priors" / "weights" / "bundled.pt"
    before = bundled.read_bytes()
    proc = _run([sys.executable, "scripts/score_gpu_prior.py", str(out / "prior_gpu.pt"), "--ship",
                 "--sizes", "64", "--frames", "1"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REFUSED" in proc.stdout and "| 64x64 | 0.1 |" in proc.stdout
    assert bundled.read_bytes() == before
