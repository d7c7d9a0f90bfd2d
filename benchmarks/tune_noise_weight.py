"""Tune the one constant of the noisy data step, v (svimg.sampling.noise_level.PRIOR_SPREAD), once.

    python benchmarks/tune_noise_weight.py            # writes benchmarks/results/noise_weight_tuning.json

On the development clip carphone[100:116] (64x64, 16 frames; NOT one of the
report clips of benchmarks/quality.py), uniform 13 (circular) + Gaussian noise
0.02, bundled prior, every default of ``svimg.sample`` except
``noise_std="auto"``: PSNR for each v of the grid.  The best value is then
written into noise_level.py by hand and kept fixed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CLIP, SIGMA = ("carphone", 100), 0.02


def main(argv=None) -> int:
    import svimg
    from svimg import data, metrics, priors
    from svimg.ops import TemporalPSF
    from svimg.sampling import noise_level

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", default="5.8e-4,1.15e-3,1.7e-3,2.9e-3")
    p.add_argument("--out", type=Path, default=HERE / "results" / "noise_weight_tuning.json")
    args = p.parse_args(argv)
    x = torch.from_numpy(data.clip(CLIP[0], frames=16, start=CLIP[1], size=64).values.copy())
    op = TemporalPSF(13)
    g = torch.Generator().manual_seed(zlib.crc32(f"{CLIP}|uniform 13, noise".encode()))
    y = svimg.forward_op(x, op) + SIGMA * torch.randn(x.shape, generator=g, dtype=x.dtype)
    prior, scores = priors.bundled(), {}
    for v in map(float, args.grid.split(",")):
        noise_level.PRIOR_SPREAD = v
        start = time.perf_counter()
        x_hat = svimg.sample(y, op, prior, noise_std="auto", seed=0, progress=False)
        scores[v] = metrics.psnr(x_hat, x)
        print(f"v {v:g}: {scores[v]:.2f} dB ({time.perf_counter() - start:.0f} s)", flush=True)
    record = {"clip": f"{CLIP[0]}[{CLIP[1]}:{CLIP[1] + 16}]", "task": "uniform 13, noise 0.02", "size": 64,
              "psnr_by_v": scores, "best": max(scores, key=scores.get)}
    args.out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
