"""Measure a prior as a one-step denoiser on held-out frames, plus unconditional samples.

    python -m svimg.priors.evaluate --out docs [--prior bundled] [--flips 1|2|4] [--run runs/bundled]
                                    [--size 256|64|native]

Denoising protocol: frames of carphone and bikes (never trained on), centre-cropped and resized
to 256 x 256 (``--size 64``: 64 x 64; ``--size native``: the full 272 x 640 frames of bikes alone),
values x in [0, 1]; y = x + s n with n ~ N(0, I) (seeded), s in {0.05, 0.1, 0.2}.
In the prior's [-1, 1] units the noise is 2 s; pick the t whose ``sqrt((1 - a_t) / a_t)`` is
closest to 2 s, feed ``x_t = sqrt(a_t) (2 y - 1)`` and take Tweedie's estimate
``x0 = (x_t - sqrt(1 - a_t) eps(x_t, t)) / sqrt(a_t)``, clipped to [-1, 1], back to [0, 1].
References on the same frames and noise: the best Gaussian filter (sigma tuned per noise level
on these frames) and BM3D (``bm3d.bm3d_rgb`` with the true noise level).  PSNR is the mean
over frames.  Samples: deterministic DDIM (eta = 0) with ``--sample-steps`` steps.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from .base import MIRRORS, flips_value
from .schedule import alphas_cumprod, timestep_for_sigma

__all__ = ["held_out_frames", "tweedie_denoise", "gaussian_filter_best", "bm3d_denoise", "ddim_samples",
           "evaluate", "NOISE_LEVELS"]

NOISE_LEVELS = (0.05, 0.1, 0.2)


def held_out_frames(per_clip: int = 4, size: int | None = 256, stride: int = 30) -> torch.Tensor:
    """``per_clip`` frames (every ``stride``-th from 0) of carphone and bikes, (N, 3, size, size) in [0, 1].

    ``size=None``: bikes alone at its native 272 x 640 (the clips differ in size).
    """
    from ..data import clip

    names = ("carphone", "bikes") if size is not None else ("bikes",)
    vids = [clip(name, frames=stride * (per_clip - 1) + 1, size=size).values[::stride] for name in names]
    return torch.from_numpy(np.concatenate(vids)).float()


@torch.no_grad()
def tweedie_denoise(prior, y: torch.Tensor, sigma: float, batch: int = 4) -> torch.Tensor:
    """One-step Tweedie estimate of x from y = x + sigma n (both in [0, 1] units); see the module docstring."""
    t = timestep_for_sigma(prior.betas, 2 * sigma)
    a = float(alphas_cumprod(prior.betas)[t])
    out = []
    for chunk in y.split(batch):
        x_t = a**0.5 * (2 * chunk - 1)
        eps = prior.eps(x_t, torch.full((len(chunk),), t, dtype=torch.long))
        x0 = ((x_t - (1 - a) ** 0.5 * eps) / a**0.5).clamp(-1, 1)
        out.append((x0 + 1) / 2)
    return torch.cat(out)


def gaussian_filter_best(y: torch.Tensor, x: torch.Tensor, sigmas=np.arange(0.2, 3.01, 0.1)):
    """Best spatial Gaussian filter over ``sigmas`` by mean PSNR against ``x``: (psnr, sigma, output)."""
    from scipy.ndimage import gaussian_filter

    from ..metrics import psnr

    best = (-np.inf, None, None)
    yn = y.numpy()
    for s in sigmas:
        out = torch.from_numpy(gaussian_filter(yn, sigma=(0, 0, s, s), mode="reflect")).clamp(0, 1)
        p = float(psnr(out, x))
        if p > best[0]:
            best = (p, round(float(s), 2), out)
    return best


def bm3d_denoise(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D (``bm3d.bm3d_rgb``, true noise level) on each (3, H, W) frame of y."""
    import bm3d

    out = [bm3d.bm3d_rgb(f.permute(1, 2, 0).numpy(), sigma_psd=sigma) for f in y]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().clamp(0, 1)


@torch.no_grad()
def ddim_samples(prior, n: int = 8, size: int = 64, steps: int = 50, seed: int = 0) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) samples: x_{s} = sqrt(a_s) x0_hat + sqrt(1 - a_s) eps, t = 999 -> 0."""
    g = torch.Generator().manual_seed(seed)
    a = alphas_cumprod(prior.betas)
    ts = np.linspace(len(a) - 1, 0, steps).round().astype(int)
    x = torch.randn(n, prior.channels, size, size, generator=g)
    for i, t in enumerate(ts):
        eps = prior.eps(x, torch.full((n,), int(t), dtype=torch.long))
        at = float(a[t])
        x0 = ((x - (1 - at) ** 0.5 * eps) / at**0.5).clamp(-1, 1)
        a_next = float(a[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        x = a_next**0.5 * x0 + (1 - a_next) ** 0.5 * eps if i + 1 < len(ts) else x0
    return (x + 1) / 2


def _loss_plot(run_dir: Path, out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_step = {int(r["step"]): r for r in csv.DictReader(open(run_dir / "loss.csv"))}  # last entry wins
    rows = [by_step[k] for k in sorted(by_step)]
    step = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    w = min(200, len(loss))
    smooth = np.convolve(loss, np.ones(w) / w, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(step, loss, lw=0.4, alpha=0.4, label="per step")
    ax.plot(step[w - 1:], smooth, lw=1.5, label=f"mean of {w} steps")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step (batch 8 of 64x64 crops)")
    ax.set_ylabel("eps-MSE loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"steps": int(step[-1]), "seconds": float(rows[-1]["seconds"]),
            f"final_loss_mean_last_{w}": float(smooth[-1])}


def _grid_png(imgs: torch.Tensor, out: Path, cols: int = 4, zoom: int = 2) -> None:
    import imageio.v3 as iio

    imgs = imgs.repeat_interleave(zoom, dim=-2).repeat_interleave(zoom, dim=-1)  # nearest-neighbour zoom
    n, c, h, w = imgs.shape
    rows = -(-n // cols)
    grid = torch.ones(c, rows * (h + 2), cols * (w + 2))
    for i, im in enumerate(imgs):
        r, q = divmod(i, cols)
        grid[:, r * (h + 2): r * (h + 2) + h, q * (w + 2): q * (w + 2) + w] = im
    iio.imwrite(out, (grid.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8))


def evaluate(prior, out_dir, *, run_dir=None, per_clip: int = 4, seed: int = 0, sample_steps: int = 50,
             with_bm3d: bool = True, size: int | None = 256) -> dict:
    """Run the protocol of the module docstring; write ``bundled_prior_eval.json`` (and PNGs) to ``out_dir``.

    At a ``size`` other than 256 the file is ``bundled_prior_eval_{size or 'native'}.json`` and no
    samples or loss plot are made.
    """
    from ..metrics import psnr

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x = held_out_frames(per_clip, size)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g)
    frames = f"{per_clip} carphone + {per_clip} bikes, {size}x{size}" if size else f"{per_clip} bikes, native 272x640"
    res = {"prior": prior.name, "sha256": prior.sha256, "flips": getattr(prior, "flips", 1), "frames": frames,
           "rows": []}
    for s in NOISE_LEVELS:
        y = x + s * noise
        t0 = time.perf_counter()
        p_prior = float(psnr(tweedie_denoise(prior, y, s), x))
        t_prior = time.perf_counter() - t0
        p_gauss, s_gauss, _ = gaussian_filter_best(y, x)
        row = {"sigma": s, "t": timestep_for_sigma(prior.betas, 2 * s), "noisy": float(psnr(y.clamp(0, 1), x)),
               "prior_tweedie": p_prior, "prior_seconds": round(t_prior, 1),
               "gaussian_best": p_gauss, "gaussian_sigma_px": s_gauss}
        if with_bm3d:
            row["bm3d"] = float(psnr(bm3d_denoise(y, s), x))
        row["prior_minus_gaussian"] = p_prior - p_gauss
        res["rows"].append(row)
        print(json.dumps(row))
    if size != 256:
        (out_dir / f"bundled_prior_eval_{size or 'native'}.json").write_text(json.dumps(res, indent=1))
        return res
    t0 = time.perf_counter()
    _grid_png(ddim_samples(prior, steps=sample_steps, seed=seed), out_dir / "bundled_prior_samples.png")
    res["samples"] = {"method": f"DDIM eta=0, {sample_steps} steps, 8 samples of 64x64 (shown 2x), seed {seed}",
                      "seconds": round(time.perf_counter() - t0, 1)}
    if run_dir is not None:
        res["training"] = _loss_plot(Path(run_dir), out_dir / "bundled_prior_loss.png")
    (out_dir / "bundled_prior_eval.json").write_text(json.dumps(res, indent=1))
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prior", default="bundled", help="prior spec (see svimg.priors.load)")
    p.add_argument("--flips", type=flips_value, choices=tuple(MIRRORS), default=None,
                   help="mirror images the prior's eps is averaged over (default: the prior's own)")
    p.add_argument("--out", default="docs")
    p.add_argument("--run", default=None, help="training run dir with loss.csv (for the loss plot)")
    p.add_argument("--frames", type=int, default=4, help="frames per held-out clip")
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--size", default="256", help="frame size: 256, 64, ... or 'native' (bikes at 272x640)")
    args = p.parse_args(argv)
    from . import load

    size = None if args.size == "native" else int(args.size)
    evaluate(load(args.prior, flips=args.flips), args.out, run_dir=args.run, per_clip=args.frames,
             sample_steps=args.sample_steps, with_bm3d=not args.no_bm3d, size=size)


if __name__ == "__main__":
    main()
