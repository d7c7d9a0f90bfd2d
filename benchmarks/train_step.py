"""Seconds per training step of ``svimg.priors.train``'s loop body: eager torch against torch.compile, per thread count.

    python benchmarks/train_step.py --out benchmarks/results/train_step.json

One step = forward, MSE against the noise, backward, Adam (the loop of :func:`svimg.priors.train.train`
without data loading and logging), batch 8 of 64 x 64 crops, for the bundled prior's network and the
user-trained size (``USER_CONFIG``).  Every (network, threads) pair runs eager and compiled steps
interleaved over ``--rounds`` rounds of ``--steps`` steps; the compile time is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def make_step(config: dict, compiled: bool, batch: int, crop: int):
    """A closure running one optimiser step on fixed random data (the cost does not depend on the data)."""
    from svimg.priors.adm import ADMUNet

    torch.manual_seed(0)
    model = ADMUNet(**config)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    forward = model
    if compiled:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forward = torch.compile(model)
    x = torch.randn(batch, config["in_channels"], crop, crop)
    t = torch.randint(1000, (batch,))
    noise = torch.randn_like(x)

    def step():
        loss = (forward(x, t) - noise).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def run(args) -> dict:
    from svimg.priors.train import BUNDLED_CONFIG, USER_CONFIG

    rows, load = [], [os.getloadavg()]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, config in (("bundled", BUNDLED_CONFIG), ("user-size", USER_CONFIG)):
            steps = {"eager": make_step(config, False, args.batch, args.crop),
                     "compile": make_step(config, True, args.batch, args.crop)}
            first = {k: _seconds(s) for k, s in steps.items()}  # compile happens here
            times = {k: [] for k in steps}
            for _ in range(args.rounds):
                for k, s in steps.items():
                    times[k].append(sum(_seconds(s) for _ in range(args.steps)) / args.steps)
            for k in steps:
                rows.append({"threads": threads, "network": name, "mode": k, "seconds_per_step":
                             statistics.median(times[k]), "first_step_seconds": first[k]})
                print(json.dumps(rows[-1]), flush=True)
    load.append(os.getloadavg())
    return {"batch": args.batch, "crop": args.crop, "loadavg": load, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "train_step.json")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    args = p.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
