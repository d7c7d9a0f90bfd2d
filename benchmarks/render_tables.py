"""Render the markdown tables of benchmarks/README.md from the files in benchmarks/results/.

    python benchmarks/render_tables.py [--results benchmarks/results] [--readme benchmarks/README.md]

Sources: every pytest-benchmark JSON file in the results folder (``bench_*.json``,
written by ``pytest benchmarks/ --benchmark-json=...``; when a benchmark
appears in several files the newest run wins) and the quality run's
``quality_summary.csv``, ``quality_settings.json`` and ``quality_tuning.json``
(written by ``quality.py``).  Each table replaces the text between
``<!-- BEGIN name -->`` and ``<!-- END name -->`` in the README; sections
without data say so instead of keeping stale numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = ("machine", "kernels", "api", "blur", "share", "cgf64", "cg", "sampler", "quality", "priors")
QUALITY_TABLES = {
    "temporal": "Table 1 — temporal PSF, circular boundary, no noise",
    "spatio-temporal": "Table 2 — uniform 7 (circular) followed by a spatial degradation, no noise",
    "temporal-noisy": "Temporal PSF, circular boundary, measurement noise",
    "temporal-zero": "Temporal PSF, zero boundary, no noise",
    "spatio-temporal-noisy": "uniform 7 (circular) followed by a spatial degradation, measurement noise",
}


# ----------------------------------------------------------------------------- loading

def load_benchmarks(results: Path) -> tuple[list[dict], list[dict]]:
    """(benchmarks, runs): every benchmark entry (newest per fullname and thread count) with ``_run`` pointing
    at its file's machine_info/datetime, and one record per JSON file."""
    runs, latest = [], {}
    for path in sorted(results.glob("bench_*.json")):
        data = json.loads(path.read_text())
        if "benchmarks" not in data:
            continue
        run = {"file": path.name, "datetime": data.get("datetime", ""), "machine_info": data.get("machine_info", {})}
        runs.append(run)
        threads = run["machine_info"].get("svimg_bench", {}).get("torch_threads")
        for bench in data["benchmarks"]:
            key = (bench["fullname"], threads)  # runs at different thread counts are kept side by side
            previous = latest.get(key)
            if previous is None or previous["_run"]["datetime"] <= run["datetime"]:
                latest[key] = {**bench, "_run": run}
    return list(latest.values()), runs


def _optional_csv(path: Path) -> list[dict]:
    return read_csv(path) if path.exists() else []


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- formatting helpers

def table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_seconds(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_float(value, digits: int) -> str:
    v = float(value)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞"
    return f"{v:.{digits}f}"


def _shape(info: dict) -> str:
    return "×".join(str(s) for s in info["shape"])


# ----------------------------------------------------------------------------- speed sections

def machine_section(runs: list[dict]) -> str:
    if not runs:
        return "_No benchmark results yet._"
    rows = []
    for run in runs:
        mi = run["machine_info"]
        cpu = mi.get("cpu", {})
        extra = mi.get("svimg_bench", {})
        rows.append([
            run["file"], run["datetime"][:19].replace("T", " "),
            f"{cpu.get('brand_raw', mi.get('processor', '?'))}, {cpu.get('count', '?')} logical CPUs",
            str(extra.get("memory_gib", "?")) + " GiB", str(extra.get("cuda") or "none"),
            f"torch {extra.get('torch', '?')} ({extra.get('torch_threads', '?')} threads), "
            f"numpy {extra.get('numpy', '?')}, scipy {extra.get('scipy', '?')}",
            ", ".join(extra.get("backends", [])),
        ])
    return table(["file", "run (UTC)", "CPU", "RAM", "GPU", "libraries", "svimg backends"], rows)


def _threads(bench: dict) -> int:
    return bench["extra_info"].get("threads", bench["_run"]["machine_info"].get("svimg_bench", {}).get("torch_threads", 1))


def kernels_section(benches: list[dict]) -> str:
    """One table per device, shape, PSF width and thread count; "× copy" is the kernel's time over a plain copy's."""
    cases = [b for b in benches if "bytes_moved" in b["extra_info"]]
    copies = {(b["extra_info"]["device"], _shape(b["extra_info"]), _threads(b)): b for b in cases
              if b["extra_info"]["op"] == "copy"}
    cases = [b for b in cases if "width" in b["extra_info"]]
    if not cases:
        return ratios_section(benches) or "_No kernel benchmark results yet._"
    out = [ratios_section(benches)] if ratios_section(benches) else []
    groups = sorted({(b["extra_info"]["device"], _shape(b["extra_info"]), b["extra_info"]["width"], _threads(b))
                     for b in cases})
    for device, shape, width, threads in groups:
        copy = copies.get((device, shape, threads))
        if copy is None:
            continue
        here = [b for b in cases if (b["extra_info"]["device"], _shape(b["extra_info"]), b["extra_info"]["width"],
                                     _threads(b)) == (device, shape, width, threads)]
        copy_s = copy["stats"]["median"]
        out.append(f"**{device}, {shape} float32, uniform width {width}, {threads} thread(s)** — "
                   f"{copy['extra_info']['impl']} of the volume: {fmt_seconds(copy_s)}")
        impls = sorted({b["extra_info"]["impl"] for b in here}, key=lambda name: (not name.startswith("svimg"), name))

        def median(impl, op):
            hit = [b for b in here if b["extra_info"]["impl"] == impl and b["extra_info"]["op"] == op]
            return (hit[0]["stats"]["median"], hit[0]["extra_info"].get("dispatch")) if hit else (None, None)

        rows = []
        for impl in impls:
            row = [impl]
            for op in ("forward", "adjoint", "normal"):
                s, chosen = median(impl, op)
                if s is None:
                    row.append("–")
                    continue
                cell = f"{fmt_seconds(s)} · {s / copy_s:.2f}× copy"
                scipy_s = median("scipy-convolve1d", op)[0]
                if impl.startswith("svimg") and scipy_s:
                    cell += f" · scipy {scipy_s / s:.1f}× slower"
                if impl == "svimg" and chosen:
                    cell += f" · ran {chosen}"
                row.append(cell)
            rows.append(row)
        out.append(table(["implementation", "forward M x", "adjoint Mᵀ x", "normal MᵀM x"], rows))
    return "\n\n".join(out)


def ratios_section(benches: list[dict]) -> str:
    """The interleaved comparison (``test_ratios_cpu``): kernel time over copy time and scipy's over svimg's."""
    out = []
    for b in sorted((b for b in benches if "ratio_medians" in b["extra_info"]), key=_threads):
        m, x = b["extra_info"]["ratio_medians"], b["extra_info"]
        copy = m["copy"]
        rows = []
        for key, chosen in x["dispatch"].items():
            mine, scipy = m[f"svimg {key}"], m[f"scipy {key}"]
            rows.append([key, chosen, fmt_seconds(mine["wall"]), f"{mine['wall'] / copy['wall']:.2f}×",
                         f"{mine['cpu'] / copy['cpu']:.2f}×", f"{scipy['wall'] / mine['wall']:.1f}×"])
        out.append(f"**Interleaved, {_shape(x)} float32, {_threads(b)} thread(s), median of {x['rounds']} rounds** — "
                   f"copy {fmt_seconds(copy['wall'])} wall, {fmt_seconds(copy['cpu'])} CPU")
        out.append(table(["PSF, operator", "dispatch ran", "svimg (wall)", "÷ copy (wall)", "÷ copy (CPU time)",
                          "scipy ÷ svimg (wall)"], rows))
    return "\n\n".join(out)


def api_section(benches: list[dict]) -> str:
    interleaved = [b for b in benches if "api_medians" in b["extra_info"]]
    if interleaved:
        rows = []
        for b in sorted(interleaved, key=_threads):
            m = b["extra_info"]["api_medians"]
            for kind in ("forward", "adjoint"):
                own, api = m[f"op.{kind}"], m[f"svimg.{kind}_op"]
                rows.append([str(_threads(b)), kind, fmt_seconds(own["wall"]), fmt_seconds(api["wall"]),
                             f"{(api['wall'] / own['wall'] - 1) * 100:+.1f} %", f"{(api['cpu'] / own['cpu'] - 1) * 100:+.1f} %"])
        return ("Interleaved in one loop, median of " + str(interleaved[0]["extra_info"]["rounds"]) + " rounds\n\n"
                + table(["threads", "call", "op's own call", "svimg.*_op", "overhead (wall)", "overhead (CPU time)"], rows))
    cases = [b for b in benches if "api_call" in b["extra_info"]]
    if not cases:
        return "_No functional-layer benchmark results yet._"
    rows = []
    for threads in sorted({_threads(b) for b in cases}):
        med = {b["extra_info"]["api_call"]: b["stats"]["median"] for b in cases if _threads(b) == threads}
        for kind in ("forward", "adjoint"):
            own, api = med.get(f"op.{kind}"), med.get(f"svimg.{kind}_op")
            if own and api:
                rows.append([str(threads), f"{kind}", fmt_seconds(own), fmt_seconds(api), f"{(api / own - 1) * 100:+.1f} %"])
    return table(["threads", "call", "op's own call", "svimg.*_op", "overhead"], rows)


def _grid(cases: list[dict], row_of, column_of, cell) -> tuple[list, list[list[str]]]:
    """(columns, rows): one row per distinct ``row_of(b)``, one column per sorted ``column_of(b)``, cells ``cell(b)``."""
    columns = sorted({column_of(b) for b in cases})
    rows = []
    for name in dict.fromkeys(row_of(b) for b in cases):
        hits = {column_of(b): b for b in cases if row_of(b) == name}
        rows.append([name] + [cell(hits[c]) if c in hits else "–" for c in columns])
    return columns, rows


def blur_section(benches: list[dict]) -> str:
    cases = [b for b in benches if "blur_impl" in b["extra_info"]]
    if not cases:
        return "_No blur benchmark results yet._"
    columns, rows = _grid(cases, lambda b: b["extra_info"]["blur_impl"], lambda b: (_threads(b), b["extra_info"]["dtype"]),
                          lambda b: fmt_seconds(b["stats"]["median"]))
    return table(["implementation"] + [f"{dtype}, {t} thread(s)" for t, dtype in columns], rows)


def share_section(benches: list[dict]) -> str:
    cases = [b for b in benches if "share_task" in b["extra_info"]]
    if not cases:
        return "_No sampler-share benchmark results yet._"
    rows = []
    for b in sorted(cases, key=lambda b: (_threads(b), b["extra_info"]["size"], b["name"])):
        x = b["extra_info"]
        rows.append([str(_threads(b)), f"16×3×{x['size']}×{x['size']}", x["share_task"], str(x["nfe"]),
                     fmt_seconds(x["total_s"]), fmt_seconds(x["prior_s"]), fmt_seconds(x["total_s"] - x["prior_s"]),
                     f"{x['share'] * 100:.1f} %"])
    return table(["threads", "video", "operator", "prior calls", "sample", "in the prior", "outside", "non-network share"],
                 rows)


def cgf64_section(benches: list[dict]) -> str:
    cases = [b for b in benches if "cg_task" in b["extra_info"]]
    if not cases:
        return "_No float64 CG benchmark results yet._"
    columns, rows = _grid(cases, lambda b: b["extra_info"]["cg_task"], lambda b: (_threads(b), b["extra_info"]["size"]),
                          lambda b: fmt_seconds(b["stats"]["median"] / b["extra_info"]["cg_iters"]))
    return table(["operator"] + [f"16×3×{n}×{n}, {t} thread(s)" for t, n in columns], rows)


def cg_section(benches: list[dict]) -> str:
    cases = [b for b in benches if "n_iter" in b["extra_info"] and "task" in b["extra_info"]]
    if not cases:
        return "_No cg_solve benchmark results yet._"
    out = []
    for device in sorted({b["extra_info"]["device"] for b in cases}):
        here = [b for b in cases if b["extra_info"]["device"] == device]
        backends = sorted({b["extra_info"]["backend"] for b in here})
        tasks = list(dict.fromkeys(b["extra_info"]["task"] for b in sorted(here, key=lambda b: b["name"])))
        first = here[0]["extra_info"]
        rows = []
        for task in tasks:
            row = [task]
            for backend in backends:
                hit = [b for b in here if b["extra_info"]["task"] == task and b["extra_info"]["backend"] == backend]
                row.append(fmt_seconds(hit[0]["stats"]["median"]) if hit else "–")
            rel = [b["extra_info"]["relative_residual"] for b in here if b["extra_info"]["task"] == task]
            row.append(f"{rel[0]:.2e}")
            rows.append(row)
        out.append(f"**{device}, {_shape(first)}, {first['n_iter']} iterations (median of the timed solves)**")
        out.append(table(["degradation"] + [f"{b} backend" for b in backends] + ["‖r₅‖/‖r₀‖"], rows))
    return "\n\n".join(out)


def sampler_section(benches: list[dict]) -> str:
    cases = [b for b in benches if "frames" in b["extra_info"] and "batch_size" in b["extra_info"]]
    if not cases:
        return "_No sampler benchmark results yet._"
    out = []
    for device in sorted({b["extra_info"]["device"] for b in cases}):
        here = sorted((b for b in cases if b["extra_info"]["device"] == device), key=lambda b: b["extra_info"]["frames"])
        e = here[0]["extra_info"]
        rows = []
        for b in here:
            x = b["extra_info"]
            rows.append([
                str(x["frames"]), f"{x['volume_mib']:.2f}", fmt_seconds(b["stats"]["median"] / x["nfe"]),
                fmt_float(x.get("peak_mib", float("nan")), 1), fmt_float(x.get("prior_peak_mib", float("nan")), 1),
            ])
        out.append(f"**{device}: {e['size']}×{e['size']} RGB frames, batch_size={e['batch_size']}, nfe={e['nfe']}, "
                   f"uniform-7 PSF; memory = {e.get('memory_measure', '?')}**")
        out.append(table(["T (frames)", "one volume (MiB)", "seconds / NFE", "peak, whole sample (MiB)",
                          "peak, one prior call (MiB)"], rows))
    return "\n\n".join(out)


# ----------------------------------------------------------------------------- quality

def quality_markdown(summary: list[dict], settings: dict, tuning: dict | None = None) -> str:
    """The quality tables: one per task family, rows = methods, cells = PSNR / SSIM / TC (means over clips)."""
    if not summary:
        return "_No quality results yet._"
    out = [settings_line(settings)]
    for key, title in QUALITY_TABLES.items():
        rows_here = [r for r in summary if r["table"] == key]
        if not rows_here:
            continue
        columns = list(dict.fromkeys(r["column"] for r in rows_here))
        methods = list(dict.fromkeys(r["label"] for r in rows_here))
        rows = []
        for label in methods:
            mine = [r for r in rows_here if r["label"] == label]
            row = [label]
            for col in columns:
                hit = [r for r in mine if r["column"] == col]
                row.append(_cell(hit[0]) if hit else "–")
            secs = [float(r["seconds"]) for r in mine]
            row += [fmt_float(sum(secs) / len(secs), 1), _distinct(mine, "nfe"), _distinct(mine, "n_clips")]
            rows.append(row)
        sigma = {"temporal-noisy": settings.get("sigma"), "spatio-temporal-noisy": settings.get("sigma_spatial")}
        extra = f" (σ_y = {sigma[key]})" if key in sigma else ""
        out.append(f"**{title}{extra}** — PSNR (dB) / SSIM / temporal-consistency error (lower is better)")
        out.append(table(["method"] + columns + ["time (s)", "NFE", "clips"], rows))
    same = same_clips_markdown(summary)
    if same:
        out.append(same)
    if tuning:
        out.append(tuning_markdown(tuning))
    return "\n\n".join(out)


def _distinct(rows: list[dict], key: str) -> str:
    values = sorted({int(float(r[key])) for r in rows})
    return "/".join(str(v) if v else "–" for v in values)


def same_clips_markdown(summary: list[dict]) -> str:
    """PSNR of the methods run on fewer clips next to ours on exactly those clips."""
    ours_clips = max((int(float(r["n_clips"])) for r in summary if r["method"] == "ours"), default=0)
    rows = [r for r in summary if r["method"] != "ours" and int(float(r["n_clips"])) < ours_clips
            and not math.isnan(float(r["ours_psnr_same_clips"]))]
    if not rows:
        return ""
    body = [[r["label"], r["task"], str(r["n_clips"]), fmt_float(r["psnr"], 2), fmt_float(r["ours_psnr_same_clips"], 2)]
            for r in rows]
    return ("**Methods run on fewer clips, against ours on the same clips** (PSNR, dB)\n\n"
            + table(["method", "task", "clips", "method PSNR", "ours PSNR, same clips"], body))


def _cell(row: dict) -> str:
    return f"{fmt_float(row['psnr'], 2)} / {fmt_float(row['ssim'], 3)} / {fmt_float(row['tc'], 4)}"


def settings_line(s: dict) -> str:
    clips = ", ".join(s.get("report_clips", []))
    return (
        f"Settings: {s.get('frames')} frames of {s.get('size')}×{s.get('size')} RGB, report clips {clips} "
        f"(tuning clip {s.get('tuning_clip')}); prior `{s.get('prior')}`; ours: nfe {s.get('nfe_temporal')} "
        f"(temporal, eta {s.get('eta_temporal')}) / {s.get('nfe_spatial')} (spatio-temporal, eta {s.get('eta_spatial')}), "
        f"{s.get('cg_iters')} CG iterations; DPS / DiffusionMBIR: nfe {s.get('nfe_diffusion')} on "
        f"{s.get('diffusion_clips')} clip(s), tasks: {s.get('diffusion_tasks')}; ablations on {s.get('ablation_clips')} "
        f"clip(s), tasks: {s.get('ablation_tasks')}; {s.get('workers')} worker process(es) × {s.get('threads')} torch "
        f"thread(s) on {s.get('machine')}; seed {s.get('seed')}; wall time {fmt_float(s.get('wall_seconds', float('nan')), 0)} s."
    )


def tuning_markdown(tuning: dict) -> str:
    rows = []
    for entry in tuning.get("choices", []):
        grid = ", ".join(f"{v:g}: {fmt_float(p, 2)}" for v, p in zip(entry["grid"], entry["psnr"]))
        rows.append([entry["label"], entry["scope"], entry["param"], grid, f"{entry['chosen']:g}"])
    return (f"**Tuning** on clip {tuning.get('clip')} (best PSNR; grid value: PSNR dB)\n\n"
            + table(["method", "tuned on → applied to", "parameter", "grid", "chosen"], rows))


def priors_markdown(old: list[dict], new: list[dict], alone: list[dict] = ()) -> str:
    """Ours with the previous bundled prior (``results/prior_old/``) against ours with the current one, per task;
    ``alone``: the current network without mirror averaging (``results/prior_current_flips1/``), when measured."""
    if not old or not new:
        return "_No prior comparison yet._"
    mean_new = {r["task"]: float(r["psnr"]) for r in new if r["method"] == "ours"}
    mean_alone = {r["task"]: float(r["psnr"]) for r in alone if r["method"] == "ours"}
    rows = []
    for r in old:
        if r["method"] != "ours" or r["task"] not in mean_new:
            continue
        before, after = float(r["psnr"]), mean_new[r["task"]]
        row = [r["task"], fmt_float(before, 2)]
        if mean_alone:
            row += [fmt_float(mean_alone[r["task"]], 2), f"{mean_alone[r['task']] - before:+.2f}"]
        rows.append(row + [fmt_float(after, 2), f"{after - before:+.2f}"])
    head = ["task", "previous prior"]
    if mean_alone:
        head += ["current network alone (flips 1)", "change (dB)"]
    return table(head + ["current prior (flips 4)" if mean_alone else "current prior", "change (dB)"], rows)


# ----------------------------------------------------------------------------- README

def replace_section(text: str, name: str, body: str) -> str:
    """Replace what lies between ``<!-- BEGIN name -->`` and ``<!-- END name -->``; the markers must exist."""
    pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no '<!-- BEGIN {name} -->' ... '<!-- END {name} -->' section")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def render(results: Path, readme: Path) -> dict:
    """Rewrite every section of ``readme`` from ``results``; returns the section bodies."""
    benches, runs = load_benchmarks(results)
    summary_path = results / "quality_summary.csv"
    if summary_path.exists():
        settings = json.loads((results / "quality_settings.json").read_text())
        tuning_path = results / "quality_tuning.json"
        tuning = json.loads(tuning_path.read_text()) if tuning_path.exists() else None
        quality = quality_markdown(read_csv(summary_path), settings, tuning)
    else:
        quality = quality_markdown([], {})
    bodies = {
        "machine": machine_section(runs),
        "kernels": kernels_section(benches),
        "api": api_section(benches),
        "blur": blur_section(benches),
        "share": share_section(benches),
        "cgf64": cgf64_section(benches),
        "cg": cg_section(benches),
        "sampler": sampler_section(benches),
        "quality": quality,
        "priors": priors_markdown(_optional_csv(results / "prior_old" / "quality_summary.csv"),
                                  _optional_csv(summary_path),
                                  _optional_csv(results / "prior_current_flips1" / "quality_summary.csv")),
    }
    text = readme.read_text()
    for name in SECTIONS:
        text = replace_section(text, name, bodies[name])
    readme.write_text(text)
    return bodies


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    args = parser.parse_args(argv)
    render(args.results, args.readme)
    print(f"rendered {args.readme} from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
