"""Windowed versus single pass (issue 16): 48 frames of carphone and bikes at 64x64, windows of 16.

    python benchmarks/windows_vs_single.py      # writes results/windows_vs_single.json (~5 min, one thread)

Bundled prior, nfe 10, seed 0, noise-free measurement; box PSFs (circular) with the exact data step,
the Gaussian PSF (reflect) with gamma 1.  PSNR in dB against the clean clip.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch

import svimg
from svimg.metrics import psnr
from svimg.ops import TemporalPSF
from svimg.sampling.windows import sample_windowed

CASES = (("box 7 (circular)", TemporalPSF(7), {}), ("box 13 (circular)", TemporalPSF(13), {}),
         ("Gaussian 1 (reflect), gamma 1", TemporalPSF.gaussian(1.0, boundary="reflect"), {"gamma": 1.0}))


def main():
    torch.set_num_threads(1)
    rows = []
    for clip in ("carphone", "bikes"):
        x = svimg.data.clip(clip, frames=48, size=64).values
        for label, op, kw in CASES:
            y = svimg.forward_op(x, op)
            t0 = time.perf_counter()
            single = svimg.sample(y, op, nfe=10, seed=0, progress=False, **kw)
            t1 = time.perf_counter()
            windowed = sample_windowed(y, op, window=16, nfe=10, seed=0, progress=False, **kw)
            t2 = time.perf_counter()
            rows.append(dict(clip=clip, psf=label, measurement=float(psnr(np.clip(y, 0, 1), x)),
                             single=float(psnr(single, x)), windowed=float(psnr(windowed, x)),
                             single_s=round(t1 - t0, 1), windowed_s=round(t2 - t1, 1)))
            print(json.dumps(rows[-1]), flush=True)
    (Path(__file__).parent / "results" / "windows_vs_single.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
