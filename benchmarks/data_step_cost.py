"""What float64 data steps cost per NFE on the CPU: one data step (5 CG iterations) in float32 and in
float64, and one prior evaluation, measured side by side (interleaved repeats, median).

    python benchmarks/data_step_cost.py      # 16 x 3 x 64 x 64, uniform 13 and uniform 7 + GaussianBlur(13, 2)

Writes benchmarks/results/data_step_cost.json.  One NFE of ``svimg.sample`` is one prior
evaluation plus one data step, so the extra cost per NFE is t64 - t32.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    from svimg import priors
    from svimg.ops import GaussianBlur, TemporalPSF
    from svimg.sampling import DDSSchedule
    from svimg.sampling.data_step import DataStep
    from svimg.sampling.prior_eval import PriorEvaluator

    torch.manual_seed(0)
    shape, repeats = (16, 3, 64, 64), 7
    x0 = torch.rand(shape)
    prior = priors.bundled()
    evaluator = PriorEvaluator(prior, shape[1], None)
    schedule = DDSSchedule(20, prior.betas)
    t = schedule.timesteps[5]
    ops = {"uniform 13": TemporalPSF(13), "uniform 7 + GaussianBlur(13, 2)": GaussianBlur(13, 2.0) @ TemporalPSF(7)}
    record = {"shape": list(shape), "threads": torch.get_num_threads(), "repeats": repeats, "ops": {}}
    with torch.no_grad():
        for name, op in ops.items():
            y = op.forward(x0)
            steps = {dt: DataStep(op, y, schedule, n_iter=5, dtype=dt) for dt in (torch.float32, torch.float64)}
            times = {"prior": [], "float32": [], "float64": []}
            for _ in range(repeats):
                for key, fn in (("prior", lambda: evaluator(2 * x0 - 1, t)),
                                ("float32", lambda: steps[torch.float32](x0, t)),
                                ("float64", lambda: steps[torch.float64](x0, t))):
                    start = time.perf_counter()
                    fn()
                    times[key].append(time.perf_counter() - start)
            med = {k: statistics.median(v) for k, v in times.items()}
            med["extra_per_nfe_fraction"] = (med["float64"] - med["float32"]) / (med["prior"] + med["float32"])
            record["ops"][name] = med
            print(name, {k: round(v, 4) for k, v in med.items()}, flush=True)
    (HERE / "results" / "data_step_cost.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
