"""Temporal deblurring with plain conjugate gradients, no prior: when it works and when it cannot.

    python examples/deblur_cg.py [--clip carphone|bikes|synthetic] [--frames 16] [--size 64] [--iters 100]

A clip (``svimg.data.clip``, centre-cropped to size x size; ``synthetic`` is a disc and a grating moving
across a gradient) is blurred along time with the paper's uniform 13-frame PSF, y = M x, and reconstructed
with ``svimg.cg_solve`` on the whole video, in float64, from x0 = 0.  Two boundaries:

* ``circular`` (the paper's): M is an invertible circulant, so CG recovers the clip up to rounding.
* ``zero``: frames beyond the ends are dark.  M loses rank (14 of 16 for 16 frames), information is
  destroyed, and CG can only return the minimum-norm least-squares video: the PSNR gain is limited.
  This is where a prior (``svimg.sample``) is needed.

Prints, per boundary, the rank of M and the PSNR (dB) of the blurred video and of the reconstruction
against the original: the mean over frames (the papers' convention) and the worst frame.  With the zero
boundary the two differ wildly: the lost components live on the first and last frames only, the middle
frames come back exactly, and a mean of per-frame PSNRs hides that.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import svimg
from svimg.data import clip
from svimg.metrics import psnr
from svimg.ops import TemporalPSF


def moving_pattern(frames: int, size: int) -> np.ndarray:
    """(frames, 3, size, size) float64 in [0, 1]: a disc crossing the frame over a drifting grating."""
    t = np.arange(frames)[:, None, None]
    yy, xx = np.mgrid[0:size, 0:size] / size
    grating = 0.5 + 0.25 * np.sin(2 * np.pi * (3 * xx + 2 * yy - 0.15 * t))
    cx, cy = 0.2 + 0.6 * t / max(frames - 1, 1), 0.5 + 0.2 * np.sin(0.5 * t)
    disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.04).astype(float)
    red, green = np.maximum(grating, disc), grating * (1 - disc)
    blue = np.broadcast_to(0.3 + 0.4 * yy, grating.shape)
    return np.clip(np.stack([red, green, blue], axis=1), 0.0, 1.0)


def load(name: str, frames: int, size: int) -> np.ndarray:
    if name == "synthetic":
        return moving_pattern(frames, size)
    return clip(name, frames=frames, size=size).values.astype(np.float64)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="carphone", help="carphone, bikes or synthetic (default: carphone)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64, help="frame height and width in pixels (default: 64)")
    p.add_argument("--iters", type=int, default=100, help="CG iterations (default: 100)")
    p.add_argument("--width", type=int, default=13, help="temporal PSF width in frames (default: 13)")
    args = p.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))

    x = load(args.clip, args.frames, args.size)
    print(f"{args.clip}: {x.shape[0]} frames of {x.shape[2]}x{x.shape[3]}, TemporalPSF({args.width}), "
          f"{args.iters} CG iterations")
    print(f"{'boundary':<10} {'rank M':>7} {'blurred dB (mean/worst)':>24} {'CG dB (mean/worst)':>20}")
    results = {}
    for boundary in ("circular", "zero"):
        op = TemporalPSF(args.width, boundary=boundary)
        y = svimg.forward_op(x, op)
        x_hat = svimg.cg_solve(op, y, n_iter=args.iters, tol=1e-12)
        blurred, restored = psnr(y, x, per_frame=True), psnr(np.clip(x_hat, 0.0, 1.0), x, per_frame=True)
        rank = int(np.linalg.matrix_rank(op.matrix(x.shape[0])))
        results[boundary] = {
            "rank": rank,
            "blurred_psnr": float(blurred.mean()),
            "blurred_psnr_worst": float(blurred.min()),
            "cg_psnr": float(restored.mean()),
            "cg_psnr_worst": float(restored.min()),
        }
        r = results[boundary]
        print(f"{boundary:<10} {f'{rank}/{x.shape[0]}':>7} {r['blurred_psnr']:>14.2f} / {r['blurred_psnr_worst']:>6.2f}"
              f" {r['cg_psnr']:>10.2f} / {r['cg_psnr_worst']:>6.2f}")
    return results


if __name__ == "__main__":
    main()
