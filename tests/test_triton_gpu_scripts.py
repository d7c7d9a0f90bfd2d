"""The Python parts of benchmarks/gpu_run.sh run end to end on the CPU in their tiny mode
(Triton interpreter), so the GPU check is known to work before a GPU runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.triton
tt = pytest.importorskip("svimg._kernels.triton_temporal")
if not tt.INTERPRETED:
    pytest.skip("the dry run needs the Triton interpreter (CPU)", allow_module_level=True)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    """Import the benchmark scripts as modules; restore SVIMG_BACKEND and torch's thread count after."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("SVIMG_BACKEND", "triton")  # the scripts set it; monkeypatch puts the original back
    threads = torch.get_num_threads()
    import gpu_bench_kernels
    import gpu_e2e

    yield gpu_bench_kernels, gpu_e2e
    torch.set_num_threads(threads)


def _result(folder: Path, kind: str) -> dict:
    files = sorted(folder.glob(f"{kind}_*.json"))
    assert len(files) == 1 and files[0].with_suffix(".md").is_file(), list(folder.iterdir())
    return json.loads(files[0].read_text())


def test_kernel_benchmark_dry_run(scripts, tmp_path):
    kernels, _ = scripts
    assert kernels.main(kernels.parse_args(["--device", "cpu", "--tiny", "--out", str(tmp_path)])) == 0
    data = _result(tmp_path, "kernels")
    impls = {(r["impl"], r["op"]) for r in data["kernels"]}
    assert {("triton-kernel", op) for op in ("forward", "adjoint", "normal")} <= impls
    assert {"conv1d", "conv3d", "fft", "svimg-dispatch"} <= {impl for impl, _ in impls}
    assert all(r["max_err"] < 1e-2 and r["gbps"] > 0 for r in data["kernels"])
    assert sum(s["default"] for s in data["sweep"]) <= 1 and len(data["cg"]) == 3


def test_sampler_e2e_dry_run(scripts, tmp_path):
    _, e2e = scripts
    args = e2e.parse_args(["--device", "cpu", "--tiny", "--backend", "triton", "--out", str(tmp_path)])
    assert e2e.main(args) == 0
    data = _result(tmp_path, "e2e")
    (run,) = data["runs"]
    assert run["backend"] == "triton" and run["finite"] and run["prior_calls"] == run["nfe"] == 2
    assert 0 <= run["non_network_frac"] < 1 and "RANDOM weights" in data["prior"]
