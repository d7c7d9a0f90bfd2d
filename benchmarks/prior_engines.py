"""The prior's network against the machine's arithmetic limit: eager torch, torch.compile, ONNX Runtime.

    python benchmarks/prior_engines.py --out benchmarks/results/prior_engines.json

For each thread count (``--threads``, default 1 and 2), network (the bundled prior, and a
user-trained-size prior: ``svimg train-prior``'s USER_CONFIG, random weights) and frame
size (64 x 64, 256 x 256, 272 x 640; one frame per thread per call, the least the sampler batches on
the CPU), every engine runs ``--rounds`` rounds, the engines interleaved inside each round so that the
machine's load falls on all of them alike.  Engines: eager torch, ``torch.compile``, ONNX Runtime, and on
two threads or more ONNX Runtime with the frames side by side (``onnxruntime-frames``).
Reported per row: the median seconds per frame per call (a call's seconds over its frames), the
network's FLOPs per frame (torch's FlopCounterMode, 2 per multiply-add), the FLOP floor = FLOPs / the float32 matmul rate measured at the
same thread count (a 1024^3 ``torch.mm``, interleaved with the rounds), and the ratio seconds / floor.
``/proc/loadavg`` is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SIZES = ((64, 64), (256, 256), (272, 640))
MATMUL_N = 1024


def matmul_rate() -> float:
    """float32 FLOP/s of one ``MATMUL_N``^3 matmul (2 N^3 FLOPs), best of three."""
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(3))
    return 2 * MATMUL_N**3 / best


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def network_flops(net, size) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    x, t = torch.zeros(1, 3, *size), torch.full((1,), 500, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x, t)
    return counter.get_total_flops()


def networks() -> dict:
    """name -> (network, sha256): the bundled prior and a user-trained-size one (random weights, a made-up sha256)."""
    from svimg import priors
    from svimg.priors.adm import ADMUNet
    from svimg.priors.train import USER_CONFIG

    bundled = priors.load("bundled", flips=1)
    user = ADMUNet(**USER_CONFIG).eval().requires_grad_(False)
    return {"bundled": (bundled.net, bundled.sha256), "user-size": (user, "benchmark-user-size-random-weights")}


def engines(net, sha256, with_compile: bool) -> dict:
    """engine name -> callable(x, t); torch.compile only ``with_compile`` (its compile takes minutes here),
    ``onnxruntime-frames`` only on two threads or more (one frame per thread)."""
    from svimg.priors.engine import NetworkEngine, available_engines

    out = {"torch": net}
    if with_compile:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["compile"] = torch.compile(net, dynamic=False)
    if "onnxruntime" in available_engines():
        engine = NetworkEngine(net, sha256)
        out["onnxruntime"] = engine._run_onnx
        if torch.get_num_threads() > 1:
            out["onnxruntime-frames"] = engine._run_onnx_frames
    return out


def run(args) -> dict:
    os.environ.setdefault("SVIMG_CACHE_DIR", tempfile.mkdtemp(prefix="svimg-bench-cache-"))
    rows, load = [], [os.getloadavg()]
    nets = networks()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for name, (net, sha) in nets.items():
            runners = engines(net, sha, threads in args.compile_threads and name in args.compile_networks)
            for size in SIZES if name in args.all_size_networks else SIZES[:2]:
                x, t = torch.randn(threads, 3, *size), torch.full((threads,), 500, dtype=torch.long)
                flops = network_flops(net, size)
                with torch.no_grad():
                    first = {e: _seconds(lambda e=e: runners[e](x, t)) for e in runners}  # export / compile
                    times = {e: [] for e in runners}
                    rates = []
                    for _ in range(args.rounds):
                        rates.append(matmul_rate())
                        for e, runner in runners.items():
                            times[e].append(_seconds(lambda: runner(x, t)))
                    ref = net(x, t)
                    errors = {e: float((runners[e](x, t) - ref).abs().max() / ref.abs().max()) for e in runners}
                rate = statistics.median(rates)
                for e in runners:
                    sec = statistics.median(times[e]) / threads
                    rows.append({"threads": threads, "network": name, "size": f"{size[0]}x{size[1]}", "engine": e,
                                 "seconds": sec, "first_call_seconds": first[e] / threads, "gflop": flops / 1e9,
                                 "matmul_gflops": rate / 1e9, "floor_seconds": flops / rate,
                                 "ratio_to_floor": sec / (flops / rate), "max_rel_error": errors[e]})
                    print(json.dumps(rows[-1]), flush=True)
    load.append(os.getloadavg())
    return {"rounds": args.rounds, "torch": torch.__version__, "loadavg": load, "rows": rows}


def markdown(rows: list[dict]) -> str:
    lines = ["| threads | network | size | engine | s per frame per call | floor s | ratio to floor | vs torch |",
             "|---|---|---|---|---|---|---|---|"]
    eager = {(r["threads"], r["network"], r["size"]): r["seconds"] for r in rows if r["engine"] == "torch"}
    for r in rows:
        speedup = eager[(r["threads"], r["network"], r["size"])] / r["seconds"]
        lines.append(f"| {r['threads']} | {r['network']} | {r['size']} | {r['engine']} | {r['seconds']:.3f} | "
                     f"{r['floor_seconds']:.3f} | {r['ratio_to_floor']:.2f} | {speedup:.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "results" / "prior_engines.json")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--compile-threads", type=int, nargs="*", default=[1, 2], help="thread counts torch.compile runs at")
    p.add_argument("--compile-networks", nargs="*", default=["bundled", "user-size"])
    p.add_argument("--all-size-networks", nargs="*", default=["bundled", "user-size"],
                   help="networks run at every size (the others at 64x64 and 256x256 only)")
    args = p.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
