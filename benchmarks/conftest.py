"""pytest setup for the speed suites in this folder (not part of the default test run).

Run them with::

    pytest benchmarks/ --benchmark-json=benchmarks/results/bench_cpu.json

Files named ``bench_*.py`` are collected here (the project's ``python_files``
stays ``test_*.py``), and the machine description that pytest-benchmark writes
into the JSON gains what the tables need to be read correctly: library
versions, thread counts, the kernel backends that import and the CUDA device.
"""

from __future__ import annotations

import os
import platform

import pytest
import torch

import svimg
from svimg import _dispatch


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` as test modules unless ``python_files`` already matches them."""
    if file_path.suffix != ".py" or not file_path.name.startswith("bench_"):
        return None
    patterns = parent.config.getini("python_files")
    if parent.session.isinitpath(file_path) or any(file_path.match(pattern) for pattern in patterns):
        return None  # pytest's own collector takes it (named on the command line, or matched)
    return pytest.Module.from_parent(parent, path=file_path)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the timings depend on beyond the CPU model pytest-benchmark already stores."""
    import numpy
    import psutil
    import scipy

    info = {
        "svimg": svimg.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset (OpenMP default: all cores)"),
        "logical_cpus": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "backends": _dispatch.available_backends(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    machine_info["svimg_bench"] = info


@pytest.fixture
def backend(monkeypatch):
    """Force svimg's temporal kernel backend for one test: ``backend("cython")``."""

    def force(name: str) -> None:
        if name not in _dispatch.available_backends():
            pytest.skip(f"svimg backend {name!r} is not available here ({_dispatch.available_backends()})")
        monkeypatch.setenv("SVIMG_BACKEND", name)

    return force


def interleaved_medians(runners: dict, rounds: int) -> dict:
    """Run every callable once per round, in turn, ``rounds`` times; per name the median wall-clock and CPU
    seconds (``time.process_time``: all threads of this process).  Interleaving exposes every candidate to
    the same load on a shared machine, so the ratios of these medians are the side-by-side comparison."""
    import statistics
    import time

    for run in runners.values():
        run()  # warm-up: first-call dispatch measurements, allocations
    wall, cpu = {name: [] for name in runners}, {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return {name: {"wall": statistics.median(wall[name]), "cpu": statistics.median(cpu[name])} for name in runners}
