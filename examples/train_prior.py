"""Train svimg's bundled prior on this machine and export its weights.

    bash scripts/fetch_training_photos.sh data/photos                  # once: Debian's wallpaper photographs
    nice -n 19 python examples/train_prior.py runs/bundled --photos data/photos --hours 1.5   # train / resume
    python examples/train_prior.py runs/bundled --export svimg/priors/weights/bundled.pt

Training resumes from the newest checkpoint in the run directory (the loss log is
runs/bundled/loss.csv); ``--init`` starts a new run from exported weights.  Uses CUDA when
available (``--batch-size`` larger there), else the CPU with ``--threads`` threads (default: all of them).
"""

import argparse

from svimg.priors.train import BUNDLED_CONFIG, export_weights, latest_checkpoint, train
from svimg.priors.training_data import bundled_pools


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--photos", default="data/photos", help="folder written by scripts/fetch_training_photos.sh")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop at this many optimiser steps")
    p.add_argument("--hours", type=float, default=None, help="stop after this much wall time")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--min-region", type=int, default=None,
                   help="smallest source region of a crop (default --crop; smaller enlarges some crops)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--cooldown", type=int, default=0,
                   help="lower the rate linearly over the last COOLDOWN steps before --steps")
    p.add_argument("--low-t-fraction", type=float, default=0.5,
                   help="share of samples whose t is drawn from 0..LOW_T_MAX-1 instead of 0..999")
    p.add_argument("--low-t-max", type=int, default=200)
    p.add_argument("--model-channels", type=int, default=BUNDLED_CONFIG["model_channels"])
    p.add_argument("--channel-mult", default=",".join(map(str, BUNDLED_CONFIG["channel_mult"])))
    p.add_argument("--res-blocks", type=int, default=BUNDLED_CONFIG["num_res_blocks"])
    p.add_argument("--init", metavar="WEIGHTS", help="start a new run from these exported weights")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the machine's; 2 threads ran a step 1.7x faster than 1 here, "
                        "benchmarks/README.md)")
    p.add_argument("--checkpoint-minutes", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", metavar="OUT", help="export the newest checkpoint's EMA weights to OUT and exit")
    args = p.parse_args()
    if args.export:
        ckpt = latest_checkpoint(args.run_dir)
        if ckpt is None:
            raise SystemExit(f"no checkpoint in {args.run_dir}")
        print(ckpt, "->", args.export, "sha256", export_weights(ckpt, args.export))
        return
    config = {**BUNDLED_CONFIG, "model_channels": args.model_channels, "num_res_blocks": args.res_blocks,
              "channel_mult": tuple(int(m) for m in args.channel_mult.split(","))}
    train(args.run_dir, config=config, batch_size=args.batch_size, crop=args.crop, min_region=args.min_region,
          lr=args.lr, warmup=args.warmup, cooldown=args.cooldown,
          low_t_fraction=args.low_t_fraction, low_t_max=args.low_t_max, max_steps=args.steps, max_hours=args.hours,
          checkpoint_minutes=args.checkpoint_minutes, seed=args.seed, threads=args.threads,
          pools=bundled_pools(args.photos), init_weights=args.init)


if __name__ == "__main__":
    main()
