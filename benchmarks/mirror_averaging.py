"""Mirror averaging by measurement: flips 1, 2, 4 and "cycle" at equal NFE and at equal network calls.

    python benchmarks/mirror_averaging.py --out benchmarks/results/mirror_averaging.json

For every (clip, task) of ``benchmarks/quality.py`` chosen here (default: 2 report clips x the
three temporal-noisy tasks, 64 x 64, 16 frames, ``noise_std="auto"`` on noisy tasks, seed 0;
``--tables`` picks other tables of quality.py, ``--flips`` the settings) ``svimg.sample``
restores y once per setting, the settings interleaved so that the machine's load falls on all of
them alike:

* equal NFE: each ``flips`` at ``--nfe`` steps (flips k makes k network calls per step, cycle 1);
* equal calls (about equal wall time): ``--nfe`` network calls for every setting, i.e. flips 1
  and cycle at nfe steps (shared with the first set), flips 2 at nfe / 2 and flips 4 at nfe / 4.

Each row: clip, task, flips, nfe, network calls, PSNR (dB), seconds.  The summary gives, per setting,
the mean PSNR, the mean difference to flips 4 at ``--nfe`` (per row and its worst) and the mean seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import quality  # noqa: E402


def settings_list(nfe: int, flips=None, equal_calls: bool = True) -> list[tuple]:
    """(flips, nfe) pairs: each of ``flips`` (default: every mirror setting) at ``nfe``, then (``equal_calls``)
    flips 2 and 4 at the network calls of flips 1 and cycle."""
    from svimg.priors.base import CYCLE, MIRRORS

    same_nfe = [(f, nfe) for f in (flips or MIRRORS)]
    same_calls = [(f, nfe // f) for f in MIRRORS if f not in (1, CYCLE)]
    return same_nfe + (same_calls if equal_calls else [])


def flips_list(text: str | None) -> list | None:
    """``--flips`` "1,4,cycle" as [1, 4, "cycle"] (None: every setting)."""
    from svimg.priors.base import flips_value

    return None if text is None else [flips_value(f) for f in text.split(",")]


def run(args) -> dict:
    import torch
    import svimg
    from svimg import metrics, priors

    torch.set_num_threads(args.threads)
    s = {"frames": args.frames, "size": args.size, "nfe_temporal": args.nfe, "eta_temporal": 0.15,
         "nfe_spatial": args.nfe, "eta_spatial": 0.8, "cg_iters": 5}
    tables = args.tables.split(",")
    tasks = [t for table in tables for t in quality.make_tasks(args.sigma) if t.table == table][: args.tasks]
    clips = quality.REPORT_CLIPS[args.skip_clips: args.skip_clips + args.clips]
    ours = quality.METHODS_BY_KEY["ours"]
    pairs = settings_list(args.nfe, flips_list(args.flips), not args.equal_nfe_only)
    rows, load = [], [os.getloadavg()]
    for clip in clips:
        x = quality._video(clip, s)
        for task in tasks:
            y, op = quality.measurement(x, task, clip)
            kwargs, _ = quality.base_kwargs(ours, task, s)
            if not rows:  # warm-up (weights, kernels' first-call choices), not recorded
                svimg.sample(y, op, prior=priors.load(args.prior, flips=1), **{**kwargs, "nfe": 1}, progress=False)
            for flips, nfe in pairs:
                prior = priors.load(args.prior, flips=flips)
                start = time.perf_counter()
                x_hat = svimg.sample(y, op, prior=prior, **{**kwargs, "nfe": nfe}, seed=args.seed, progress=False)
                seconds = time.perf_counter() - start
                rows.append({"clip": quality.clip_name(clip, args.frames), "task": task.key, "flips": flips,
                             "nfe": nfe, "calls": nfe * prior.calls_per_eps, "psnr": metrics.psnr(x_hat, x),
                             "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
        load.append(os.getloadavg())
    return {"settings": vars(args) | {"out": str(args.out)}, "loadavg": load, "rows": rows,
            "summary": summarize(rows, args.nfe)}


def summarize(rows: list[dict], nfe: int) -> list[dict]:
    """Per (flips, nfe): mean PSNR, mean and worst difference to flips 4 at ``nfe`` on the rows that have it
    (None without such rows), mean seconds."""
    ref = {(r["clip"], r["task"]): r["psnr"] for r in rows if r["flips"] == 4 and r["nfe"] == nfe}
    out = []
    for key in dict.fromkeys((r["flips"], r["nfe"]) for r in rows):
        mine = [r for r in rows if (r["flips"], r["nfe"]) == key]
        diff = [r["psnr"] - ref[(r["clip"], r["task"])] for r in mine if (r["clip"], r["task"]) in ref]
        out.append({"flips": key[0], "nfe": key[1], "calls": mine[0]["calls"],
                    "psnr": sum(r["psnr"] for r in mine) / len(mine),
                    "vs_flips4_mean": sum(diff) / len(diff) if diff else None,
                    "vs_flips4_worst": min(diff, default=None), "seconds": sum(r["seconds"] for r in mine) / len(mine)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "mirror_averaging.json")
    p.add_argument("--clips", type=int, default=2)
    p.add_argument("--skip-clips", type=int, default=0, help="start at this report clip (to split a run)")
    p.add_argument("--merge", type=Path, nargs="*", default=[],
                   help="instead of running: summarize the rows printed by earlier runs into --out")
    p.add_argument("--tables", default="temporal-noisy",
                   help="comma-separated tables of benchmarks/quality.py whose tasks are run")
    p.add_argument("--tasks", type=int, default=None, help="only the first N tasks of those tables")
    p.add_argument("--equal-nfe-only", action="store_true", help="skip the equal-calls settings")
    p.add_argument("--flips", default=None, help='the settings at equal NFE, e.g. "1,4,cycle" (default: all)')
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--nfe", type=int, default=20)
    p.add_argument("--sigma", type=float, default=0.02)
    p.add_argument("--prior", default="bundled")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.merge:
        rows = [json.loads(line) for path in args.merge for line in path.read_text().splitlines()
                if line.startswith("{")]
        result = {"settings": vars(args) | {"out": str(args.out), "merge": [str(m) for m in args.merge]},
                  "rows": rows, "summary": summarize(rows, args.nfe)}
    else:
        result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    for r in result["summary"]:
        versus = ("no flips 4 rows" if r["vs_flips4_mean"] is None else
                  f"{r['vs_flips4_mean']:+.3f} (worst {r['vs_flips4_worst']:+.3f}) vs flips 4")
        print(f"flips {r['flips']!s:>5} nfe {r['nfe']:>3} calls {r['calls']:>3}: {r['psnr']:.2f} dB, {versus}, "
              f"{r['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
