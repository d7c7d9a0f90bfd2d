"""The prior's network per engine and frame size: seconds per frame per call, and its ratio to the FLOP floor.

    pytest benchmarks/bench_prior.py --benchmark-json=benchmarks/results/bench_prior.json

The floor is the network's FLOPs per frame (torch's FlopCounterMode) over the float32 matmul rate
measured in the same test at the same thread count (:func:`prior_engines.matmul_rate`); each
benchmark's ``extra_info`` holds ``gflop``, ``matmul_gflops``, ``floor_seconds``, ``seconds_per_frame``
and ``ratio_to_floor`` (the median per frame over the floor).  Each call holds one frame per thread.
The interleaved comparison of the engines, with torch.compile and 1 and 2 threads, is
``benchmarks/prior_engines.py``.
"""

from __future__ import annotations

import statistics

import pytest
import torch

import prior_engines

ENGINES = ["torch", "onnxruntime", "onnxruntime-frames"]


@pytest.fixture(scope="module")
def bundled():
    return prior_engines.networks()["bundled"]


@pytest.mark.parametrize("size", prior_engines.SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("engine", ENGINES)
def test_network_seconds_per_frame_per_call(benchmark, bundled, engine, size):
    net, sha = bundled
    runners = prior_engines.engines(net, sha, with_compile=False)
    if engine not in runners:
        pytest.skip(f"{engine} is not installed, or needs two threads")
    run, threads = runners[engine], torch.get_num_threads()
    x, t = torch.randn(threads, 3, *size), torch.full((threads,), 500, dtype=torch.long)  # one frame per thread
    with torch.no_grad():
        run(x, t)  # export / warm-up
        benchmark.pedantic(run, args=(x, t), rounds=5, iterations=1)
    flops = prior_engines.network_flops(net, size)
    rate = prior_engines.matmul_rate()
    floor = flops / rate
    median = statistics.median(benchmark.stats.stats.data) / threads  # per frame
    benchmark.extra_info.update(gflop=flops / 1e9, matmul_gflops=rate / 1e9, floor_seconds=floor,
                                seconds_per_frame=median, ratio_to_floor=median / floor, threads=threads)
