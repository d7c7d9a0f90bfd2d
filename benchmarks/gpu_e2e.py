"""End-to-end sampler timing on a GPU with an ADM-256 network of RANDOM weights.

    python benchmarks/gpu_e2e.py                                  # CUDA: 16 and 32 frames, 20 and 100 NFE
    python benchmarks/gpu_e2e.py --device cpu --tiny --backend triton   # dry run (tiny network, interpreter)

The prior is ``svimg.priors.ADMUNet(**ADM256_UNCOND)`` (guided-diffusion's
256x256 unconditional architecture, 552 M parameters) wrapped in
``svimg.priors.NetworkPrior``, initialised at random (seeded; no checkpoint
is read: the weights do not change the cost).  ``svimg.sample`` restores a
temporally blurred video (``TemporalPSF(7, boundary="circular")``, the
paper's temporal task: 5 CG iterations per step, eta 0.15) and we report seconds per video, peak VRAM,
and the share of sampler time spent outside the network (each ``prior.eps``
call is bracketed by CUDA synchronisations, so network time is measured
exactly).  Paper, RTX 4090, 16 frames: 12 s at 20 NFE, 60 s at 100 NFE;
VRAM 13.3 GB (16 frames), 23.7 GB (32).  Target: non-network < 5% at 20 NFE.
Runs are ordered cheapest first and skipped when the time they would take
(extrapolated from the runs so far) exceeds ``--budget-s``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny network, frames and NFE (a dry run)")
    p.add_argument("--frames", type=int, nargs="+", default=None)
    p.add_argument("--nfe", type=int, nargs="+", default=None)
    p.add_argument("--size", type=int, default=None, help="frame height = width")
    p.add_argument("--budget-s", type=float, default=300.0, help="skip runs that would not finish within this")
    p.add_argument("--backend", choices=["torch", "cython", "triton"], default=None,
                   help="force SVIMG_BACKEND (default: svimg's choice, Triton on CUDA)")
    p.add_argument("--out", default=str(HERE / "results"))
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.device == "cpu":
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported

import torch  # noqa: E402

sys.path.insert(0, str(HERE))
from gpu_common import PAPER, device_info, md_table, results_stem, sync, write_results  # noqa: E402

import svimg  # noqa: E402
from svimg import _dispatch  # noqa: E402
from svimg.ops import TemporalPSF  # noqa: E402
from svimg.priors import ADM256_UNCOND, ADMUNet, NetworkPrior, linear_betas  # noqa: E402

TINY_CONFIG = dict(image_size=32, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                   attention_resolutions=(16,), num_head_channels=32)


def random_adm(device: torch.device, tiny: bool, seed: int = 0) -> tuple[NetworkPrior, dict]:
    """ADM UNet with random weights, built directly on ``device``; the zero-initialised output conv
    (ADM's init) is re-drawn too so that eps is not identically 0."""
    config = {**ADM256_UNCOND, **(TINY_CONFIG if tiny else {})}
    torch.manual_seed(seed)
    with torch.device(device):
        net = ADMUNet(**config)
    with torch.no_grad():
        for p in net.out.parameters():
            p.normal_(0.0, 1e-3)
    n_params = sum(p.numel() for p in net.parameters())
    prior = NetworkPrior(net, linear_betas(), channels=config["in_channels"], multiple=net.multiple,
                         name="adm256-random-init" if not tiny else "adm-tiny-random-init", config=config)
    return prior.to(device), dict(config=config, parameters=n_params)


class TimedPrior:
    """The prior protocol around ``prior``, adding up the wall time of every eps call (synchronised)."""

    def __init__(self, prior, device):
        self.prior, self.device = prior, device
        self.betas, self.channels, self.dtype = prior.betas, prior.channels, prior.dtype
        self.name, self.sha256 = prior.name, None
        self.seconds, self.calls = 0.0, 0

    def eps(self, x_t, t):
        sync(self.device)
        t0 = time.perf_counter()
        out = self.prior.eps(x_t, t)
        sync(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def run_once(prior, y, op, nfe: int, device) -> dict:
    timed = TimedPrior(prior, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    # the paper's temporal task is noiseless: exact data consistency (noise_std=None), whatever the API's default
    x = svimg.sample(y, op, timed, nfe=nfe, eta=0.15, cg_iters=5, seed=0, device=device, progress=False,
                     noise_std=None)
    sync(device)
    total = time.perf_counter() - t0
    row = dict(nfe=nfe, seconds=total, network_s=timed.seconds, prior_calls=timed.calls,
               non_network_frac=1.0 - timed.seconds / total, finite=bool(torch.isfinite(x).all()))
    if device.type == "cuda":
        row.update(peak_alloc_gb=torch.cuda.max_memory_allocated(device) / 1e9,
                   peak_reserved_gb=torch.cuda.max_memory_reserved(device) / 1e9)
    return row


def main(args) -> int:
    device = torch.device(args.device)
    if args.backend:
        os.environ["SVIMG_BACKEND"] = args.backend
    if device.type == "cpu":
        torch.set_num_threads(1)
    frames = args.frames or ([4] if args.tiny else [16, 32])
    nfes = args.nfe or ([2] if args.tiny else [20, 100])
    size = args.size or (32 if args.tiny else 256)
    info = device_info(device)
    start = time.perf_counter()
    prior, net_info = random_adm(device, args.tiny)
    print(f"ADM prior with RANDOM weights: {net_info['parameters'] / 1e6:.1f} M parameters", flush=True)
    op = TemporalPSF(7, boundary="circular")  # the paper's task: T frames in, T out
    rows, per_nfe = [], {}  # per_nfe[T]: seconds per prior evaluation, for the time budget
    for nfe in sorted(nfes):
        for T in sorted(frames):
            g = torch.Generator().manual_seed(T)
            video = torch.rand(T, 3, size, size, generator=g).to(device)
            y = op.forward(video)
            spent = time.perf_counter() - start
            guess = per_nfe.get(T, max(per_nfe.values(), default=0.0) * T / 16) * nfe
            if T not in per_nfe:
                run_once(prior, y, op, 2, device)  # warm-up: CUDA context, cuDNN choice, Triton compile
            if spent + guess > args.budget_s:
                rows.append(dict(frames=T, nfe=nfe, skipped=f"time budget: ~{guess:.0f} s needed, "
                                                            f"{args.budget_s - spent:.0f} s left"))
                print(rows[-1], flush=True)
                continue
            row = dict(frames=T, backend=_dispatch.backend_for(y), **run_once(prior, y, op, nfe, device))
            per_nfe[T] = row["seconds"] / nfe
            rows.append(row)
            print(row, flush=True)
    data = dict(info=info, tiny=args.tiny, size=size, prior=f"ADMUNet(**ADM256_UNCOND{' + TINY' if args.tiny else ''}) "
                "with RANDOM weights (seeded; no checkpoint)", network=net_info, operator=repr(op),
                sampler=dict(eta=0.15, cg_iters=5, noise="batch"), runs=rows, paper=PAPER)
    stem = results_stem(args.out, "e2e", info)
    write_results(stem, data, _markdown(data))
    return 0


def _markdown(d: dict) -> str:
    info, paper = d["info"], d["paper"]
    rows = []
    for r in d["runs"]:
        if "skipped" in r:
            rows.append([r["frames"], r["nfe"], "skipped: " + r["skipped"]] + [None] * 6)
            continue
        rows.append([r["frames"], r["nfe"], r["seconds"], paper["s_per_video"].get(r["nfe"]) if r["frames"] == 16 else None,
                     r.get("peak_alloc_gb"), r.get("peak_reserved_gb"), paper["vram_gb"].get(r["frames"]),
                     f"{r['non_network_frac']:.2%}", r["backend"]])
    return "\n".join([
        f"# Sampler end to end on {info['name']} ({info['date_utc']} UTC)\n",
        f"Prior: {d['prior']}, {d['network']['parameters'] / 1e6:.1f} M parameters; "
        f"frames {d['size']}x{d['size']}; {d['operator']}, eta {d['sampler']['eta']}, "
        f"{d['sampler']['cg_iters']} CG iterations per step.  torch {info['torch']}, triton {info['triton']}."
        f"{' TINY DRY RUN: numbers mean nothing.' if d['tiny'] else ''}\n",
        md_table(["frames", "NFE", "s / video", f"paper s ({paper['card']}, 16 frames)", "peak alloc GB",
                  "peak reserved GB", f"paper GB ({paper['card']})", "non-network time", "data-step backend"], rows),
        "\nTarget: non-network time < 5% of the sampler time at 20 NFE.\n",
    ])


if __name__ == "__main__":
    sys.exit(main(ARGS))
