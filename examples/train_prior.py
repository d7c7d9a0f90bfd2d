"""Train svimg's bundled prior on this machine and export its weights.

    python examples/train_prior.py runs/bundled --hours 1.2            # train / resume
    python examples/train_prior.py runs/bundled --export svimg/priors/weights/bundled.pt

Training resumes from the newest checkpoint in the run directory; the loss log is
runs/bundled/loss.csv.  Uses CUDA when available, else the CPU with --threads threads.
"""

import argparse

from svimg.priors.train import export_weights, latest_checkpoint, train


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=100_000, help="stop at this many optimiser steps")
    p.add_argument("--hours", type=float, default=None, help="stop after this much wall time")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--threads", type=int, default=2)
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
    train(args.run_dir, batch_size=args.batch_size, lr=args.lr, max_steps=args.steps, max_hours=args.hours,
          checkpoint_minutes=args.checkpoint_minutes, seed=args.seed, threads=args.threads)


if __name__ == "__main__":
    main()
