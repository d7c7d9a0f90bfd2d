"""svimg.sample with its defaults (bundled prior) against plain CG on a real clip, temporal PSF 13.

    python examples/sample_vs_cg.py --size 64 [--noise 0.0 0.01] [--prior adm:PATH]

Clip: 16 + 12 frames of carphone (never seen in training), centre-cropped and resized to size x size;
the 16 exposures of the default "valid" PSF are compared with the frame at their centres.
y = TemporalPSF(13) x (+ sigma_y n, seeded).  Prints PSNR (mean over frames) and wall time of
``svimg.sample(y, op=op)`` (only ``seed`` and ``progress`` added; ``--prior`` overrides the default)
and of ``svimg.baselines.cg_only(y, op)``.
"""

import argparse
import json
import time

import torch

import svimg
from svimg.baselines import cg_only
from svimg.data import clip
from svimg.metrics import psnr
from svimg.ops import TemporalPSF


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--clip", default="carphone")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0])
    p.add_argument("--prior", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(2)
    op = TemporalPSF(13)  # the default "valid" boundary: 16 exposures need 16 + 12 sharp frames
    lead, trail = op.margins
    x = torch.from_numpy(clip(args.clip, frames=16 + lead + trail, size=args.size).values)
    truth = x[lead:x.shape[0] - trail]  # the frame at each exposure's centre: what the restorations align with
    for sigma_y in args.noise:
        y = svimg.forward_op(x, op)
        y = y + sigma_y * torch.randn(y.shape, generator=torch.Generator().manual_seed(args.seed))
        kw = {} if args.prior is None else {"prior": args.prior}
        t0 = time.perf_counter()
        xs = svimg.sample(y, op=op, seed=args.seed, progress=False, **kw)
        ts = time.perf_counter() - t0
        t0 = time.perf_counter()
        xc = cg_only(y, op)  # aligned with y, like the sample
        tc = time.perf_counter() - t0
        print(json.dumps({"clip": args.clip, "size": args.size, "sigma_y": sigma_y,
                          "sample_psnr": float(psnr(xs.clamp(0, 1), truth)), "sample_seconds": round(ts, 1),
                          "cg_only_psnr": float(psnr(xc.clamp(0, 1), truth)), "cg_only_seconds": round(tc, 1),
                          "measurement_psnr": float(psnr(y.clamp(0, 1), truth))}))


if __name__ == "__main__":
    main()
