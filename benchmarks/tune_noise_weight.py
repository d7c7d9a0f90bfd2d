"""Tune the one constant of the noisy data step, v (svimg.sampling.noise_level.PRIOR_SPREAD), once.

    python benchmarks/tune_noise_weight.py            # writes benchmarks/results/noise_weight_tuning.json
    python benchmarks/tune_noise_weight.py --clips carphone:100,bikes:60,carphone:70,bikes:160 \\
        --tasks "uniform 13, noise;uniform 7, noise;Gaussian σ=1, noise" --out results/noise_weight_spread.json

By default: on the development clip carphone[100:116] (64x64, 16 frames; NOT
one of the report clips of benchmarks/quality.py), uniform 13 (circular) +
Gaussian noise 0.02, bundled prior, every default of ``svimg.sample`` except
``noise_std="auto"``: PSNR for each v of the grid.  The best value is then
written into noise_level.py by hand and kept fixed.  ``--clips`` / ``--tasks``
measure the same grid on other clips and noisy tasks of quality.py (same
measurement, seed and sampler settings) to see how far the fixed v is from
each clip's best.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse_clips(text: str) -> list[tuple[str, int]]:
    """"carphone:100,bikes:60" -> [("carphone", 100), ("bikes", 60)]."""
    clips = []
    for item in text.split(","):
        name, _, start = item.partition(":")
        if not name or not start.isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME:START[,NAME:START...], got {item!r}")
        clips.append((name, int(start)))
    return clips


def main(argv=None) -> int:
    import quality
    import svimg
    from svimg import metrics, priors
    from svimg.sampling import noise_level

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="5.8e-4,1.15e-3,1.7e-3,2.3e-3,2.9e-3")
    p.add_argument("--clips", default=[("carphone", 100)], type=parse_clips,
                   help="NAME:START,... (16 frames each)")
    p.add_argument("--tasks", default="uniform 13, noise", help="noisy tasks of quality.py, ';'-separated")
    p.add_argument("--out", type=Path, default=HERE / "results" / "noise_weight_tuning.json")
    args = p.parse_args(argv)
    tasks = {t.key: t for t in quality.make_tasks(0.02) if t.sigma > 0}
    unknown = [key for key in args.tasks.split(";") if key not in tasks]
    if unknown:
        p.error(f"--tasks: {unknown} are not noisy tasks of quality.py; choose from {sorted(tasks)}")
    grid = [float(v) for v in args.grid.split(",")]
    prior, records = priors.bundled(), []
    for key in args.tasks.split(";"):
        for clip in args.clips:
            x = quality._video(clip, {"frames": 16, "size": 64})
            y, op = quality.measurement(x, tasks[key], clip)
            scores = {}
            for v in grid:
                noise_level.PRIOR_SPREAD = v
                start = time.perf_counter()
                x_hat = svimg.sample(y, op, prior, noise_std="auto", seed=0, progress=False)
                scores[v] = metrics.psnr(x_hat, x)
                print(f"{key} | {quality.clip_name(clip, 16)} | v {v:g}: {scores[v]:.2f} dB "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
            records.append({"clip": quality.clip_name(clip, 16), "task": f"{key} {tasks[key].sigma}", "size": 64,
                            "prior_sha256": prior.sha256, "psnr_by_v": scores, "best": max(scores, key=scores.get)})
    args.out.write_text(json.dumps(records[0] if len(records) == 1 else records, indent=1))
    print(json.dumps(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
