"""Bandwidth of svimg's Triton temporal kernels on a GPU, against conv1d, conv3d and an FFT.

    python benchmarks/gpu_bench_kernels.py                      # CUDA, 16x3x256x256 float32
    python benchmarks/gpu_bench_kernels.py --device cpu --tiny  # dry run through Triton's interpreter

For each PSF (the paper's uniform 7 and 13 and Gaussian sigma 1, circular
boundary) and each operator (forward M, adjoint M^T, normal M^T M in one
launch) it times the Triton kernel alone (preallocated output), the same
call through ``svimg`` dispatch (``op.forward(x)`` etc.), and torch's
``conv1d`` (pixels as batch: a transpose each way), ``conv3d`` (a (k, 1, 1)
kernel over depth = t) and ``rfft``/``irfft`` along t.  Every result is first
checked against the float64 dense reference.  Bandwidth counts the minimum
traffic, one read and one write of the volume: GB/s = 2 * nbytes / time,
reported as a fraction of the card's peak (looked up from its name, see
``gpu_common.PEAK_BANDWIDTH``) and of a measured device-to-device copy.  The
L2 cache is flushed before every timed call.  Also: a sweep of tile shapes
for the forward kernel, half-precision storage, and one fused CG iteration
(three launches, counted with the CUDA profiler) against the torch CG.
Target (issue 6): >= 70% of peak at 16x3x256x256 float32.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu (Triton interpreter)")
    p.add_argument("--tiny", action="store_true", help="tiny sizes and few repetitions (a dry run)")
    p.add_argument("--shape", type=int, nargs=4, metavar=("T", "C", "H", "W"), default=None)
    p.add_argument("--out", default=str(HERE / "results"), help="folder for the .json/.md results")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.device == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first import of triton

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from bench_kernels import effective_kernel, torch_conv1d, torch_conv3d, torch_fft  # noqa: E402
from gpu_common import Timer, copy_bandwidth, device_info, lookup_peak, md_table, results_stem, write_results  # noqa: E402

from svimg import _dispatch  # noqa: E402
from svimg._kernels import triton_cg, triton_temporal as tt  # noqa: E402
from svimg.ops import TemporalPSF  # noqa: E402
from svimg.solvers.cg import _TorchCG, normal_system  # noqa: E402

PSFS = {"uniform7": TemporalPSF(7, boundary="circular"), "uniform13": TemporalPSF(13, boundary="circular"),
        "gauss1": TemporalPSF.gaussian(1.0, boundary="circular")}  # the paper's boundary: square T x T matrices
OPS = ("forward", "adjoint", "normal")


def _matrix(psf: TemporalPSF, op: str, T: int) -> np.ndarray:
    M = psf.matrix(T)
    return {"forward": M, "adjoint": M.T, "normal": M.T @ M}[op]


def _reference(M: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    T = x.shape[0]
    return (torch.as_tensor(np.array(M), device=x.device) @ x.double().reshape(T, -1)).reshape(x.shape)


class Bench:
    def __init__(self, device: torch.device, shape, tiny: bool):
        self.device, self.shape, self.tiny = device, tuple(shape), tiny
        self.timer = Timer(device)
        self.reps, self.warmup = (1, 0) if tiny else (30, 5)
        self.rows = []

    def volume(self, dtype=torch.float32, seed=0) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.rand(self.shape, generator=g).to(self.device, dtype)

    def time(self, fn) -> float:
        return self.timer(fn, reps=self.reps, warmup=self.warmup)

    def record(self, **row):
        self.rows.append(row)
        fields = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        print(fields, flush=True)

    def kernel_runner(self, x: torch.Tensor, M: np.ndarray, tiles=None):
        """A zero-argument call of the Triton kernel alone, output preallocated."""
        T = x.shape[0]
        x2d = x.reshape(T, -1)
        cols, weights = tt.device_tables(*_dispatch.ell_form(M), T, x.device, x.dtype)
        out = torch.empty_like(x2d)
        tiles = tiles or tt.tiling(T, x2d.shape[1], x.device, itemsize=x.element_size())
        return (lambda: tt.launch_band(x2d, cols, weights, out, tiles)), out

    def case(self, psf_name: str, op: str, dtype=torch.float32, impls=("triton-kernel", "svimg-dispatch", "conv1d",
                                                                       "conv3d", "fft")):
        psf = PSFS[psf_name]
        x = self.volume(dtype)
        M = _matrix(psf, op, x.shape[0])
        ref = _reference(M, x)
        nbytes = 2 * x.numel() * x.element_size()
        k = effective_kernel(psf.kernel, op)
        tol = 1e-4 if dtype == torch.float32 else 2e-2
        for impl in impls:
            if impl == "triton-kernel":
                run, out = self.kernel_runner(x, M)
                get = lambda run=run, out=out: (run(), out)[1].reshape(x.shape)  # noqa: E731
            elif impl == "svimg-dispatch":
                os.environ["SVIMG_BACKEND"] = "triton"
                run = get = lambda: getattr(psf, op)(x)  # noqa: E731
            else:
                fn = {"conv1d": torch_conv1d, "conv3d": torch_conv3d, "fft": torch_fft}[impl]
                run = get = lambda fn=fn: fn(x, k)  # noqa: E731
            err = float((get().double() - ref).abs().max())
            if err > tol * max(1.0, float(ref.abs().max())):
                raise AssertionError(f"{impl} {psf_name} {op} {dtype}: max error {err:.3g} vs the dense reference")
            seconds = self.time(run)
            self.record(psf=psf_name, op=op, dtype=str(dtype).replace("torch.", ""), impl=impl, us=seconds * 1e6,
                        gbps=nbytes / seconds / 1e9, max_err=err)

    def sweep(self) -> list[dict]:
        """Forward uniform-7 kernel at every (block_p, frames, warps) tiling that fits."""
        x = self.volume()
        T, P = x.shape[0], x[0].numel()
        M = _matrix(PSFS["uniform7"], "forward", T)
        chosen = tt.tiling(T, P, x.device, itemsize=4)
        blocks = (32,) if self.tiny else (128, 256, 512, 1024, 2048)
        frames_list = (1, T) if self.tiny else sorted({1, 2, 4, 8, T})
        results = []
        for block_p in blocks:
            for frames in frames_list:
                base = tt.warps_for(block_p, 4)
                for warps in (base,) if self.tiny else sorted({base, min(8, 2 * base)}):
                    tiles = tt.Tiling(T=T, P=P, block_p=block_p, frames=min(frames, T), num_warps=warps)
                    if tiles.n_programs > tt.MAX_PARTIALS:
                        continue
                    run, _ = self.kernel_runner(x, M, tiles)
                    seconds = self.time(run)
                    results.append(dict(block_p=block_p, frames=tiles.frames, num_warps=warps,
                                        programs=tiles.n_programs, us=seconds * 1e6,
                                        gbps=2 * x.numel() * 4 / seconds / 1e9,
                                        default=(block_p, tiles.frames, warps) == (chosen.block_p, chosen.frames,
                                                                                    chosen.num_warps)))
                    print("sweep", results[-1], flush=True)
        return results

    def cg(self) -> list[dict]:
        """Seconds per CG iteration on (I + A^T A) x = b for uniform 7: fused Triton vs the torch engine."""
        x = self.volume()
        psf = PSFS["uniform7"]
        os.environ["SVIMG_BACKEND"] = "triton"
        H, b = normal_system(psf, psf.forward(x), x, 1.0)
        T = x.shape[0]
        M = H.time_matrix(T)
        rows = []
        fused = triton_cg.FusedCG(*_dispatch.ell_form(M), b.reshape(T, -1), x.reshape(T, -1))
        fused.start()
        rows.append(dict(engine="fused triton (3 launches)", us_per_iter=self.time(fused.step) * 1e6,
                         kernels_per_iter=self._count_kernels(fused.step)))
        for backend in ("triton", "torch"):
            os.environ["SVIMG_BACKEND"] = backend
            engine = _TorchCG(lambda v: H(v), b, x)  # a plain function: no fused path
            engine.start()
            rows.append(dict(engine=f"torch CG, {backend} band kernel" if backend == "triton" else "torch CG, dense",
                             us_per_iter=self.time(engine.step) * 1e6, kernels_per_iter=self._count_kernels(engine.step)))
        minimum = 11 * x.numel() * 4  # Hp: 2 passes, x/r update: 6, p update: 3
        for row in rows:
            row["gbps_min_traffic"] = minimum / (row["us_per_iter"] / 1e6) / 1e9
            print("cg", row, flush=True)
        return rows

    def _count_kernels(self, fn):
        """CUDA kernels one call launches (memcpy/memset excluded), from the profiler; None on the CPU."""
        if self.device.type != "cuda":
            return None
        try:
            from torch.autograd import DeviceType
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            names = [e.name for e in prof.events() if e.device_type == DeviceType.CUDA]
            return sum(1 for n in names if not n.lower().startswith(("memcpy", "memset")))
        except Exception as err:  # the profiler is optional evidence, never a reason to fail the run
            print(f"kernel count unavailable: {err}", flush=True)
            return None


def main(args) -> int:
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type == "cpu":
        torch.set_num_threads(1)
    shape = args.shape or ((8, 1, 8, 8) if args.tiny else (16, 3, 256, 256))
    info = device_info(device)
    peak, peak_label = lookup_peak(info["name"]) if device.type == "cuda" else (None, None)
    copy_bw = copy_bandwidth(device, (1 << 20) if args.tiny else (1 << 30))
    bench = Bench(device, shape, args.tiny)
    for psf in (("uniform7",) if args.tiny else PSFS):
        for op in OPS:
            bench.case(psf, op)
    for dtype in (torch.bfloat16, torch.float16):
        bench.case("uniform7", "forward", dtype, impls=("triton-kernel", "conv3d"))
        bench.case("uniform7", "normal", dtype, impls=("triton-kernel",))
    sweep = bench.sweep()
    cg = bench.cg()
    for row in bench.rows:
        row["frac_peak"] = row["gbps"] * 1e9 / peak if peak else None
        row["frac_copy"] = row["gbps"] * 1e9 / copy_bw
    data = dict(info=info, shape=list(shape), tiny=args.tiny, peak_bandwidth=peak, peak_label=peak_label,
                copy_bandwidth=copy_bw, kernels=bench.rows, sweep=sweep, cg=cg, target_frac_peak=0.70)
    stem = results_stem(args.out, "kernels", info)
    write_results(stem, data, _markdown(data))
    return 0


def _markdown(d: dict) -> str:
    info = d["info"]
    shape = "x".join(map(str, d["shape"]))
    peak = f"{d['peak_bandwidth'] / 1e12:.3g} TB/s ({d['peak_label']})" if d["peak_bandwidth"] else "unknown (no table entry)"
    lines = [
        f"# Temporal kernels on {info['name']} ({info['date_utc']} UTC)\n",
        f"torch {info['torch']}, triton {info['triton']}; volume {shape}{' (TINY DRY RUN)' if d['tiny'] else ''}.  "
        f"Peak bandwidth: {peak}; measured device copy: {d['copy_bandwidth'] / 1e9:.3g} GB/s.  "
        f"GB/s = 2 x volume bytes / time (one read + one write), L2 flushed before each call.  "
        f"Target: triton >= {d['target_frac_peak']:.0%} of peak for float32.\n",
        md_table(["psf", "op", "dtype", "impl", "us", "GB/s", "frac peak", "frac copy", "max err"],
                 [[r["psf"], r["op"], r["dtype"], r["impl"], r["us"], r["gbps"], r["frac_peak"], r["frac_copy"],
                   r["max_err"]] for r in d["kernels"]]),
        "\n## Tile sweep (forward, uniform 7, float32; `default` = the heuristic's choice)\n",
        md_table(["block_p", "frames", "warps", "programs", "us", "GB/s", "default"],
                 [[s["block_p"], s["frames"], s["num_warps"], s["programs"], s["us"], s["gbps"],
                   "yes" if s["default"] else ""] for s in sorted(d["sweep"], key=lambda s: s["us"])]),
        "\n## One CG iteration on (I + A^T A) x = b, uniform 7, float32\n",
        md_table(["engine", "us / iteration", "CUDA kernels / iteration", "GB/s (11 volume passes)"],
                 [[c["engine"], c["us_per_iter"], c["kernels_per_iter"], c["gbps_min_traffic"]] for c in d["cg"]]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(ARGS))
