"""Restore a recorded clip: motion blur from a long exposure, cut from a longer video, noisy and 8-bit.

    python examples/recorded_blur.py [--clip carphone|bikes] [--start 40] [--frames 24] [--pool 4] [--exposure 7]

A camera that exposes each frame for ``exposure`` frame times records the mean of
that many sharp frames.  The clip is cut out of a longer recording, so its first and
last exposures reach sharp frames that are not in the clip: ``TemporalPSF(7)`` (the
default boundary, "valid") models exactly that, with ``exposure - 1`` more unknown
frames than measured ones.  :func:`svimg.data.record` makes such a clip from sharp
frames (noise 0.01, then 8-bit rounding) and the truth it is aligned with.

The restoration names the exposure and nothing else: the noise level is estimated
from the clip and the result has one frame per measured frame.  Prints the PSNR (dB)
of the whole clip for the input and for the restoration.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import svimg
from svimg.ops import Downsample, TemporalPSF


def video_psnr(x, truth) -> float:
    err = np.asarray(x, np.float64) - np.asarray(truth, np.float64)
    return float(10 * np.log10(1.0 / np.mean(err**2)))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", default="carphone", choices=("carphone", "bikes"))
    p.add_argument("--start", type=int, default=40, help="first sharp frame")
    p.add_argument("--frames", type=int, default=24, help="sharp frames (the clip records frames - exposure + 1)")
    p.add_argument("--pool", type=int, default=4, help="average-pool each frame by this factor (1: native size)")
    p.add_argument("--exposure", type=int, default=7, help="exposure in frame times (a box PSF)")
    p.add_argument("--nfe", type=int, default=20)
    args = p.parse_args(argv)

    sharp = svimg.data.clip(args.clip, frames=args.frames, start=args.start)
    if args.pool > 1:
        sharp = svimg.forward_op(sharp, Downsample(args.pool))
    op = TemporalPSF(args.exposure)                       # boundary="valid": cut from a longer recording
    y, truth = svimg.data.record(sharp, op, noise_std=0.01, bits=8, seed=0)
    x = svimg.sample(y, op, nfe=args.nfe, seed=0)       # noise_std="auto": estimated from y
    params = json.loads(x.attrs["svimg_parameters"])  # the provenance svimg.sample records
    result = {"frames": int(y.shape[0]), "noise_std": params["noise_std"],
              "input": video_psnr(y, truth), "svimg": video_psnr(x, truth)}
    print(f"{args.clip}[{args.start}:{args.start + args.frames}], exposure {args.exposure}: "
          f"{result['frames']} recorded frames, estimated noise {result['noise_std']:.4f}")
    print(f"PSNR  degraded {result['input']:.2f} dB   svimg {result['svimg']:.2f} dB")
    return result


if __name__ == "__main__":
    main()
