"""What each ``svimg`` sub-command does, given its parsed arguments."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .opspec import OP_SPEC_ATTR, parse_ops

__all__ = ["degrade", "restore", "evaluate", "demo", "train_prior"]


class Status:
    """Status lines on stderr (stdout stays clean for results), silenced by --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, message: str):
        if not self.quiet:
            print(f"svimg: {message}", file=sys.stderr, flush=True)


def _add_noise(y, sigma: float, seed: int):
    """y + sigma * n, n ~ N(0, I) drawn from numpy.random.default_rng(seed); attrs and coords kept."""
    if sigma == 0:
        return y
    n = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    return y.copy(data=y.values + np.asarray(sigma, y.dtype) * n)


def _measure(x, op, specs: list[str], sigma: float, seed: int, **record):
    """y = A x (+ noise) as a DataArray recording the operator specs, the noise and ``record``."""
    from .. import forward_op
    from .._provenance import provenance, with_record

    y = _add_noise(forward_op(x, op), sigma, seed)  # forward_op appends its line to x's history
    y.attrs = with_record(y.attrs, provenance("degrade", op, op_spec=", ".join(specs), noise=sigma, seed=seed,
                                              **record))
    y.attrs[OP_SPEC_ATTR] = ", ".join(specs)
    return y


def _check_target(path, overwrite: bool) -> None:
    """Fail before any work when OUT's format is unknown, OUT exists (without --overwrite) or cannot be written."""
    from ..io._paths import check_target, file_format

    target = Path(path).expanduser()
    file_format(target, reading=False)
    check_target(target, overwrite)


def degrade(args, status: Status) -> int:
    from .. import io

    op = parse_ops(args.op)
    _check_target(args.output, args.overwrite)
    status(f"reading {args.input}")
    x = io.load(args.input, frames=args.frames, size=args.size)
    status(f"degrading {dict(x.sizes)} with {op!r}" + (f" + noise {args.noise:g}" if args.noise else ""))
    y = _measure(x, op, args.op, args.noise, args.seed, input=str(args.input))
    io.save(y, args.output, overwrite=args.overwrite, progress=not args.quiet)
    status(f"wrote {args.output} {dict(y.sizes)}")
    return 0


def _load_prior(args):
    """Replace the --prior spec in ``args`` by the prior loaded with --prior-flips, when that is given."""
    if args.prior_flips is not None:
        from ..priors import load

        args.prior = load(args.prior, flips=args.prior_flips)


def _sampler_kwargs(args) -> dict:
    """svimg.sample's keywords from the sampler's options (:func:`svimg.cli._parser._add_sampler`)."""
    return dict(prior=args.prior, nfe=args.nfe, eta=args.eta, cg_iters=args.cg_iters, cg_rtol=args.cg_rtol,
                gamma=args.gamma, noise_std=args.noise_std, smooth_t=args.smooth_t, noise=args.noise_mode,
                seed=args.seed, batch_size=args.batch_size, device=args.device)


def _solve(method: str, y, op, args, progress: bool):
    """Run one restoration method on the measurement ``y``."""
    if method == "dds":
        from .. import sample

        return sample(y, op, progress=progress, **_sampler_kwargs(args))
    from .. import baselines

    if method == "cg":
        return baselines.cg_only(y, op, n_iter=args.nfe * args.cg_iters, device=args.device)
    return baselines.admm_tv(y, op, lam=args.tv_lambda, rho=args.tv_rho, device=args.device)


def _forecast(y, op, args):
    """The run's forecast (:func:`svimg.sampling.memory.forecast`); the loaded prior and the batch it chose are
    kept in ``args`` for the run itself."""
    from ..sampling._common import resolve_device, resolve_prior
    from ..sampling.memory import forecast

    args.prior = resolve_prior(args.prior, resolve_device(args.device))
    plan = forecast(y, op, args.prior, nfe=args.nfe, gamma=args.gamma, noise_std=args.noise_std,
                    batch_size=args.batch_size, device=args.device, auto_window=args.frames is None)
    args.batch_size = plan.batch_size if plan.fits else args.batch_size
    return plan


def frames_with_context(y, op, frames):
    """(the measured frames to restore, the part of their restoration to keep) for ``--frames``.

    With a "valid" temporal PSF (``op.margins`` nonzero) the unknown frames under the measured frames
    START:STOP are also seen by the ``support - 1`` measured frames on either side, whose own unknowns reach
    ``support - 1`` further: ``2 (support - 1)`` measured frames on either side are read and restored too
    (the same model as a whole-video restore around them), and only START:STOP is kept.  Measured with the
    closed-form prior, 7 taps: the kept frames differ from a whole-video restore's by at most 0.018 with
    ``support - 1`` frames of context, 0.001 with twice that.  Otherwise the selection itself, and
    nothing to cut (None).
    """
    from ..io._read import frame_selection

    if frames is None:
        return y, None
    sel, count = frame_selection(frames)
    T = y.sizes["t"]
    if count is not None and count > T:
        raise ValueError(f"--frames {count}: the input has only {T} frames")
    reach = 2 * sum(op.margins)
    if reach == 0:
        return y.isel(t=sel), None
    wanted = range(T)[sel]
    if wanted.step != 1 or not len(wanted):
        raise ValueError(f"--frames must select consecutive frames of the {T} measured ones, got {frames!r}")
    a, b = max(0, wanted.start - reach), min(T, wanted.stop + reach)
    return y.isel(t=slice(a, b)), slice(wanted.start - a, wanted.stop - a)


def restore(args, status: Status) -> int:
    from .. import distributed, io

    if args.method == "dds":
        _load_prior(args)
    if args.window is not None or distributed.is_batch(args.input):
        return distributed.restore_command(
            args.input, args.output, args.op, method=args.method, scheduler=args.scheduler, workers=args.workers,
            window=args.window, frames=args.frames, overwrite=args.overwrite, quiet=args.quiet,
            **_sampler_kwargs(args))
    (args.input,) = args.input
    if not args.dry_run:
        _check_target(args.output, args.overwrite)
    status(f"reading {args.input}")
    y = io.load(args.input)  # lazy for zarr, TIFF and .npy: only the shape is read here
    specs = args.op or _recorded_specs(y.attrs)
    if not specs:
        raise ValueError(f"{args.input} records no degradation operator; give it with --op SPEC")
    op = parse_ops(specs)
    y, keep = frames_with_context(y, op, args.frames)
    args.noise_std = distributed.noise_std_for(y, args.noise_std, args.gamma)
    if args.method == "dds":
        plan = _forecast(y, op, args)
        if args.dry_run:
            print(plan.line())
            return 0
        status(plan.line())
        if not plan.fits:
            raise MemoryError(plan.line())
        if plan.window is not None:
            status(f"one pass does not fit: restoring in windows of {plan.window} frames into {args.output}")
            args.window, args.input = plan.window, [args.input]
            return restore(args, status)
    elif args.dry_run:
        raise ValueError(f"--dry-run forecasts the diffusion sampler only (--method dds), got --method {args.method}")
    status(f"restoring {dict(y.sizes)} degraded by {op!r} with --method {args.method}")
    started = time.perf_counter()
    x = _solve(args.method, y, op, args, progress=not args.quiet)
    if keep is not None:
        x = x.isel(t=keep)
    status(f"restored in {time.perf_counter() - started:.1f} s")
    x.attrs[OP_SPEC_ATTR] = ", ".join(s.strip() for s in specs)
    io.save(x, args.output, overwrite=args.overwrite, progress=not args.quiet)
    status(f"wrote {args.output} {dict(x.sizes)}")
    return 0


_COLUMNS = (("psnr", "PSNR (dB)", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"),
            ("temporal_consistency", "temporal err", "{:.4f}"), ("lpips", "LPIPS", "{:.4f}"))


def metrics_table(results: dict) -> str:
    """Rows = methods, columns = the averaged metrics present in every row."""
    cols = [c for c in _COLUMNS if all(c[0] in r for r in results.values())]
    width = max(len(name) for name in results) + 2
    lines = [" " * width + "".join(f"{title:>14}" for _, title, _ in cols)]
    for name, r in results.items():
        lines.append(f"{name:<{width}}" + "".join(f"{fmt.format(r[key]):>14}" for key, _, fmt in cols))
    return "\n".join(lines)


def per_frame_table(result: dict) -> str:
    """One line per frame: PSNR, SSIM and the temporal error of the step from the previous frame."""
    lines = [f"{'frame':>6}{'PSNR (dB)':>12}{'SSIM':>10}{'temporal err':>15}"]
    temporal = [None] + result.get("temporal_consistency_per_frame", [])
    for t, (p, s) in enumerate(zip(result["psnr_per_frame"], result["ssim_per_frame"])):
        tc = "" if temporal[t] is None else f"{temporal[t]:.4f}"
        lines.append(f"{t:>6}{p:>12.2f}{s:>10.4f}{tc:>15}")
    return "\n".join(lines)


def _recorded_specs(attrs) -> list[str]:
    """The operator specs a file records (what `svimg degrade` and `svimg restore` write), or []."""
    return [s for s in str(attrs.get(OP_SPEC_ATTR, "")).split(",") if s.strip()]


def truth_for(restored, truth, status: Status):
    """The frames of ``truth`` that ``restored`` stands for.

    A "valid" temporal PSF (the operator RESTORED records) makes each measured frame the mean of an
    exposure, and the restoration holds one frame per measured frame: the sharp frame at its exposure's
    centre.  A truth that is the uncut sharp video, ``lead + trail`` (``op.margins``) frames longer, is cut to
    ``truth[lead:T - trail]``; otherwise it is compared as it is.
    """
    T, Tt, specs = restored.sizes["t"], truth.sizes["t"], _recorded_specs(restored.attrs)
    if T == Tt or not specs:
        return truth
    lead, trail = parse_ops(specs).margins
    if Tt != T + lead + trail:
        return truth
    status(f"TRUTH has {Tt} frames and RESTORED {T}: comparing TRUTH's frames {lead}:{Tt - trail}, the centres of "
           f"the exposures of the operator RESTORED records")
    return truth.isel(t=slice(lead, Tt - trail))


def evaluate(args, status: Status) -> int:
    from .. import io, metrics
    from ..io._read import select_frames

    restored = io.load(args.restored, size=args.size)  # whole (lazily): --frames applies after the alignment
    truth = truth_for(restored, io.load(args.truth, size=args.size), status)
    restored, truth = (select_frames(v, args.frames, name) for v, name in ((restored, "RESTORED"), (truth, "TRUTH")))
    result = metrics.evaluate(restored, truth, names=("RESTORED", "TRUTH"))
    if args.lpips:
        values = metrics.lpips(restored, truth, args.lpips, per_frame=True)
        result["lpips"], result["lpips_per_frame"] = float(values.mean()), values.tolist()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(metrics_table({Path(args.restored).name: result}))  # the row names what was scored
        if args.per_frame:
            print(per_frame_table(result))
    return 0


def _demo_window(frames) -> tuple[int, int]:
    """(start, count) of the demo's --frames: N (the first N) or START:STOP."""
    if isinstance(frames, int):
        return 0, frames
    start, stop = frames[0] or 0, frames[1]
    if stop is None or stop <= start:
        raise ValueError(f"--frames START:STOP needs STOP > START for the demo clip, got {start}:{stop}")
    return start, stop - start


def _demo_frames(T: int, n: int = 4) -> list[int]:
    return sorted({round(i * (T - 1) / (n - 1)) for i in range(n)}) if T > 1 else [0]


def demo(args, status: Status) -> int:
    """Degrade a held-out clip, restore it with CG alone and with svimg, print metrics, write pictures."""
    from .. import data, io, metrics
    from ..io._paths import atomic_target
    from ._figure import crop, display_frames, moving_box, side_by_side, strip_image
    from ._parser import DEMO_OPS

    out = Path(args.out).expanduser()
    specs = args.op or list(DEMO_OPS)
    op = parse_ops(specs)
    targets = {name: out / name for name in
               ("truth.zarr", "degraded.zarr", "cg.zarr", "svimg.zarr", "demo.png", "demo.mp4", "metrics.json")}
    if not args.overwrite:
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing:
            raise FileExistsError(f"{existing[0]} already exists; pass --overwrite to replace the demo files in {out}")
    start, count = _demo_window(args.frames)
    status(f"clip {args.clip!r}: frames {start}:{start + count}, {args.size}x{args.size}")
    truth = data.clip(args.clip, frames=count, start=start, size=args.size)
    y = _measure(truth, op, specs, args.noise, args.seed, clip=args.clip, start=start)
    status(f"degraded with {op!r}" + (f" + noise {args.noise:g}" if args.noise else "") + f" -> {dict(y.sizes)}")
    if args.noise_std is None and args.gamma is None and args.noise:
        args.noise_std = "auto"  # the demo's default: the noise level estimated from y

    spec = args.prior
    _load_prior(args)
    timings = {}
    started = time.perf_counter()
    cg = _solve("cg", y, op, args, progress=False)
    timings["CG"] = time.perf_counter() - started
    status(f"CG alone ({args.nfe * args.cg_iters} iterations): {timings['CG']:.1f} s")
    started = time.perf_counter()
    restored = _solve("dds", y, op, args, progress=not args.quiet)
    timings["svimg"] = time.perf_counter() - started
    flips = json.loads(restored.attrs["svimg_parameters"])["prior_flips"]
    status(f"svimg (prior {spec!r}, flips {flips}, nfe {args.nfe}): {timings['svimg']:.1f} s")

    results = {}
    if y.shape == truth.shape:
        results["degraded"] = metrics.evaluate(y.clip(0, 1), truth)
    results["CG"] = metrics.evaluate(cg, truth)
    results["svimg"] = metrics.evaluate(restored, truth)

    size = (truth.sizes["y"], truth.sizes["x"])
    scale = max(1, -(-128 // max(size)))  # show frames at least 128 px wide
    shown = [display_frames(v.values, size, scale) for v in (truth, y, cg, restored)]
    side = max(1, min(size) // 2)  # the picture: the half-size window that moves most, at twice the movie's zoom
    box = (*(scale * i for i in moving_box(truth.values, side)), scale * side)
    captions = [""] + [f"{results[k]['psnr']:.2f} dB" if k in results else "" for k in ("degraded", "CG", "svimg")]
    labels = ["truth", "degraded", "CG alone", "svimg"]
    strip = strip_image(list(zip(labels, captions, [crop(v, box, 2) for v in shown])), _demo_frames(count),
                        start)
    movie = side_by_side(shown)
    summary = {"clip": args.clip, "frames": count, "start": start, "size": args.size,
               "crop": dict(zip(("top", "left", "side"), (v // scale for v in box))),
               "op": ", ".join(specs), "noise": args.noise, "nfe": args.nfe, "eta": args.eta, "cg_iters": args.cg_iters,
               "cg_rtol": args.cg_rtol,
               "gamma": args.gamma, "noise_std": args.noise_std, "noise_mode": args.noise_mode, "prior": spec,
               "prior_flips": flips, "seed": args.seed,
               "seconds": timings,
               "metrics": {k: {m: v for m, v in r.items() if not m.endswith("_per_frame")} for k, r in results.items()}}

    out.mkdir(parents=True, exist_ok=True)  # everything is computed: now write, each file atomically
    for name, video in (("truth.zarr", truth), ("degraded.zarr", y), ("cg.zarr", cg), ("svimg.zarr", restored)):
        io.save(video, targets[name], overwrite=args.overwrite)
    with atomic_target(targets["demo.png"], args.overwrite) as tmp:
        strip.save(tmp, format="PNG")
    io.save(movie, targets["demo.mp4"], overwrite=args.overwrite, fps=8.0)
    with atomic_target(targets["metrics.json"], args.overwrite) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))

    print(f"svimg demo: {args.clip}, frames {start}:{start + count} {args.size}x{args.size}, op {', '.join(specs)}"
          + (f", noise {args.noise:g}" if args.noise else "") + f", nfe {args.nfe}, seed {args.seed}")
    print(metrics_table(results))
    print(f"time: CG {timings['CG']:.1f} s, svimg {timings['svimg']:.1f} s")
    print(f"wrote {targets['demo.png']}, {targets['demo.mp4']} and the videos as .zarr in {out}")
    return 0


def train_prior(args, status: Status) -> int:
    """``svimg train-prior``: :func:`svimg.priors.train_prior` with the command's options."""
    from ..priors import train_prior as train

    train(args.sources, args.output, hours=args.hours, steps=args.steps, resume=args.resume, overwrite=args.overwrite,
          size=args.size, min_region=args.min_region, channels=args.channels, batch_size=args.batch_size,
          width=args.width, lr=args.lr, seed=args.seed, checkpoint_minutes=args.checkpoint_minutes,
          max_side=args.max_side, device=args.device, progress=not args.quiet, status=status)
    return 0
