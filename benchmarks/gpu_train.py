"""Train a stronger prior on a GPU within a wall-time budget, writing usable weights as it goes.

    python benchmarks/gpu_train.py --pack .gpu_pack --weights $OUT/prior_gpu.pt --log-dir LOGS --budget-s 240
    python benchmarks/gpu_train.py --tiny --device cpu --pack PACK ...      # dry run: tiny network, few steps

Network ``GPU_CONFIG``: the bundled prior's ADM layout (:data:`svimg.priors.train.BUNDLED_CONFIG`:
4 levels, attention within 8 x 8 tiles at factor 8) twice as wide (32 base channels) and twice as
deep (2 res blocks per level): 7.27 M parameters against 1.30 M, 15.0 train GFLOP per 64 x 64
crop against 2.8, and 13.9 MiB as fp16, so one weights file stays under the GPU machine's
16 MiB per returned file.  Training (``GPU_TRAINING``): batch 128 of 64 x 64 multi-scale crops
from the pack's pools (stills, bigbuckbunny frames, photographs; equal pool weights), bf16 autocast
(:func:`svimg.priors.train.train` on CUDA), Adam 3e-4 after 200 warm-up steps, EMA 0.999, half of
each batch's t below 130 (the card's held-out noise levels are t = 26 / 57 / 117; run 5's recipe).
The pools live on the GPU, so crops are cut there.

Time: :func:`~svimg.priors.train.train` runs in chunks (``--chunk-s``); after each chunk the EMA
weights are exported (fp16, :func:`~svimg.priors.train.export_weights`) atomically to
``--weights``, so a run cut off at any point still leaves the last chunk's weights.  After each
chunk the run's length is re-planned from that chunk's steps per second and its setup and export
time, to end near the budget with a linear learning-rate cooldown over its last ``COOLDOWN_SHARE``
of steps (stretched or shortened without a jump in the rate once it has begun).  ``--log-dir`` gets
``train_loss.csv``, ``train_config.json`` and ``train_summary.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

from svimg.priors.train import BUNDLED_CONFIG, export_weights, latest_checkpoint, train
from svimg.priors.training_data import read_sources

#: The GPU prior's network (see the module docstring).
GPU_CONFIG = {**BUNDLED_CONFIG, "model_channels": 32, "num_res_blocks": 2}
#: Its training settings (arguments of svimg.priors.train.train).
GPU_TRAINING = dict(batch_size=128, crop=64, lr=3e-4, warmup=200, low_t_fraction=0.5, low_t_max=130,
                    ema_decay=0.999, seed=0)
#: A dry run's network and settings: the same code at a size the CPU trains in seconds.
TINY_CONFIG = dict(image_size=32, in_channels=3, model_channels=8, out_channels=3, num_res_blocks=1,
                   attention_resolutions=(2,), channel_mult=(1, 2), num_head_channels=8, resblock_updown=True,
                   use_scale_shift_norm=True, norm_groups=4, attention_window=8)
TINY_TRAINING = {**GPU_TRAINING, "batch_size": 2, "crop": 32, "warmup": 2}
COOLDOWN_SHARE = 0.3
POOLS = ("stills", "video", "photos")
MAX_WEIGHTS_BYTES = 16 * 2**20  # the GPU machine returns files of at most 16 MiB
MIN_TRAIN_S = 20.0  # a shorter run would only export barely trained weights


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", type=Path, required=True, help="training pack (scripts/build_training_pack.py)")
    p.add_argument("--weights", type=Path, required=True, help="exported EMA weights (fp16), rewritten per chunk")
    p.add_argument("--log-dir", type=Path, required=True)
    p.add_argument("--budget-s", type=float, required=True, help="wall time for everything this script does")
    p.add_argument("--chunk-s", type=float, default=60.0, help="seconds between weight exports")
    p.add_argument("--first-chunk-s", type=float, default=40.0, help="the chunk that measures the step rate")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (dry runs)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="TINY_CONFIG / TINY_TRAINING (a dry run)")
    return p.parse_args(argv)


def load_pools(pack: Path, device: torch.device) -> tuple[list[list[torch.Tensor]], dict]:
    """The pack's pools (its pool folders that exist) as float16 tensors on ``device``."""
    pools, counts = [], {}
    for name in POOLS:
        if (pack / name).is_dir():
            pools.append([img.to(device) for img in read_sources([pack / name], channels=3)])
            counts[name] = len(pools[-1])
    if not pools:
        raise ValueError(f"--pack: {pack} holds none of the pool folders {POOLS}; see scripts/build_training_pack.py")
    return pools, counts


def _steps_and_seconds(ckpt: Path) -> tuple[int, float]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return int(state["step"]), float(state["elapsed"])


def main(args) -> int:
    start = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a `timeout` still runs the finally below
    deadline = start + args.budget_s - 10.0  # the last export and the logs
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if deadline - start < MIN_TRAIN_S:
        print(f"--budget-s {args.budget_s:.0f}: too little time to train (less than {MIN_TRAIN_S:.0f} s)", flush=True)
        return 1
    config, settings = (TINY_CONFIG, TINY_TRAINING) if args.tiny else (GPU_CONFIG, GPU_TRAINING)
    pools, counts = load_pools(args.pack, device)
    print(f"pools {counts} on {device}, loaded in {time.monotonic() - start:.1f} s", flush=True)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="svimg-gpu-train-"))
    cap = args.max_steps or 10**9
    common = dict(config=config, pools=pools, device=str(device), progress=False, checkpoint_minutes=1e9,
                  threads=1 if device.type == "cpu" else None, **settings)
    summary = dict(config=config, settings=settings, pools=counts, device=str(device), chunks=[], plans=[])

    def chunk(max_steps, cooldown, seconds):
        """Train up to ``seconds`` more, export the EMA weights; record the chunk's steps and seconds."""
        t0, before = time.monotonic(), summary["chunks"][-1] if summary["chunks"] else dict(step=0, train_s_total=0.0)
        ckpt = train(run_dir, max_steps=max_steps, cooldown=cooldown, max_hours=seconds / 3600, **common)
        sha = export_weights(ckpt, args.weights)
        step, busy = _steps_and_seconds(ckpt)  # busy: seconds of training steps, all chunks
        summary["chunks"].append(dict(step=step, steps=step - before["step"], wall_s=round(time.monotonic() - t0, 1),
                                      train_s=round(busy - before["train_s_total"], 1), train_s_total=round(busy, 1),
                                      weights_sha256=sha))
        print(f"chunk done: step {step}, {time.monotonic() - start:.0f} s of {args.budget_s:.0f}; "
              f"weights {args.weights} ({args.weights.stat().st_size / 2**20:.1f} MiB)", flush=True)
        return step

    def plan(step, before=None):
        """(total steps, cooldown) that end near the deadline at the last chunk's step rate and overhead.

        ``before``: the previous plan.  Once its cooldown has begun, the new cooldown keeps this step's
        learning rate, lr (total - step) / cooldown, and still reaches 0 at the new total.
        """
        last = summary["chunks"][-1]
        rate = last["steps"] / max(1e-9, last["train_s"])
        overhead = max(0.0, last["wall_s"] - last["train_s"])  # setup, resume and export of one chunk
        remaining = max(0.0, deadline - time.monotonic())
        total = min(cap, step + int(rate * max(0.0, remaining - overhead * math.ceil(remaining / args.chunk_s))))
        if before is None or step < before[0] - before[1]:
            cooldown = min(int(COOLDOWN_SHARE * total), total - step)
        else:
            cooldown = max(1, round(before[1] * (total - step) / max(1, before[0] - step)))
        summary["plans"].append(dict(step=step, steps_per_s=round(rate, 2), overhead_s=round(overhead, 1),
                                     total=total, cooldown=cooldown))
        print(f"{rate:.2f} steps/s, {overhead:.1f} s per chunk besides: planning {total} steps, "
              f"cooldown {cooldown}", flush=True)
        return total, cooldown

    try:
        step = chunk(min(cap, max(1, cap // 2)) if args.max_steps else cap, 0,
                     min(args.first_chunk_s, deadline - time.monotonic()))
        total, cooldown = plan(step)
        while step < total and deadline - time.monotonic() > 5:
            step = chunk(total, cooldown, min(args.chunk_s, deadline - time.monotonic()))
            if step < total:  # a finished schedule ends the run (its rate has reached 0)
                total, cooldown = plan(step, (total, cooldown))
    finally:
        for name in ("loss.csv", "config.json"):
            if (run_dir / name).is_file():
                shutil.copy(run_dir / name, args.log_dir / f"train_{name}")
        summary["wall_s"] = round(time.monotonic() - start, 1)
        ckpt = latest_checkpoint(run_dir)
        summary["final_step"] = _steps_and_seconds(ckpt)[0] if ckpt else 0
        if args.weights.is_file():
            summary["weights_bytes"] = args.weights.stat().st_size
        (args.log_dir / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        shutil.rmtree(run_dir, ignore_errors=True)
    if summary.get("weights_bytes", 0) > MAX_WEIGHTS_BYTES:
        print(f"WARNING: {args.weights} is over 16 MiB and will not come back from the GPU machine", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
