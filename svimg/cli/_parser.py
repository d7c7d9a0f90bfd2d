"""The ``svimg`` argument parser: one sub-command per job, every option with its default in --help."""

from __future__ import annotations

import argparse
import inspect
import sys

from ..ops import BOUNDARIES
from .opspec import DEFAULT_BOUNDARY, GRAMMAR, split_specs

__all__ = ["build_parser", "frames_arg", "DEMO_OPS", "DEMO_NOISE", "DEMO_FRAMES"]

# The demo's measurement when --op / --noise are not given: the paper's hardest temporal PSF plus
# measurement noise, the regime where CG alone amplifies noise and the prior matters.  The demo restores
# it with --noise-std auto unless --gamma or --noise-std is given.
DEMO_OPS = ("temporal:uniform:13:circular",)  # the paper's setting, named: 16 frames in, 16 out
DEMO_NOISE = 0.02
DEMO_FRAMES = "72:88"  # carphone's 16 frames with the most motion (mean |x[t+1] - x[t]| 0.017 against 0.013 for 0:16)

OP_HELP = f"""\
operator specs (--op, repeatable or comma-separated, applied in the order given, temporal first as in the paper):
  {GRAMMAR.replace(' | ', chr(10) + '  ')}
  BOUNDARY: {", ".join(BOUNDARIES)} (default {DEFAULT_BOUNDARY}; valid: a clip cut from a longer recording,
  N frames give N - W + 1 complete exposures)
examples:
  --op temporal:uniform:13                      13-frame box blur in time (a recorded clip: 12 frames fewer)
  --op temporal:uniform:13:circular             the paper's benchmark: the clip wraps around
  --op temporal:gaussian:1.0:reflect --op spatial:sr:4
                                                Gaussian blur in time, then 4x average pooling
  --op temporal:gaussian:1.0:reflect,spatial:sr:4
                                                the same in one --op
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default (unless None/False) and keep the line breaks of descriptions and epilogs."""

    def _get_help_string(self, action):
        text = action.help or ""
        hidden = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if not hidden and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (exit status 2)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def frames_arg(text: str):
    """``N`` (the first N frames) or ``START:STOP`` (either side may be empty)."""
    try:
        if ":" in text:
            start, stop = text.split(":", 1)
            return (int(start) if start else None, int(stop) if stop else None)
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or START:STOP, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive frame count, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonneg_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _add_io(p, *, size: bool = True):
    p.add_argument("--frames", type=frames_arg, default=None, metavar="N|START:STOP",
                   help="read only these frames of IN (N = the first N); all when omitted")
    if size:
        p.add_argument("--size", type=_positive_int, default=None, metavar="PIXELS",
                       help="centre-crop IN's frames to a square and resize them to PIXELS x PIXELS")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


def _op_specs(text: str) -> list[str]:
    """The specs of one --op value (commas separate several)."""
    specs = split_specs(text)
    if not specs:
        raise argparse.ArgumentTypeError(f"expected an operator spec, got {text!r}")
    return specs


def _add_op(p, default_help: str | None = None):
    """--op SPEC[,SPEC...], repeatable: ``args.op`` is the flat list of specs in the order given."""
    default = "" if default_help is None else f"; default: {default_help}"
    p.add_argument("--op", action="extend", type=_op_specs, default=None, required=default_help is None,
                   metavar="SPEC", help=f"degradation operator spec (repeatable or comma-separated; see below){default}")


def _add_quiet(p, default=False):
    p.add_argument("-q", "--quiet", action="store_true", default=default,
                   help="no progress bars or status lines (before or after COMMAND)")


def _add_method(p):
    p.add_argument("--method", choices=("dds", "cg", "admm-tv"), default="dds",
                   help="dds: diffusion prior + CG (the method); cg: CG alone (nfe x cg-iters iterations); "
                        "admm-tv: ADMM with 3-D total variation")
    p.add_argument("--tv-lambda", type=float, default=1e-3, metavar="LAMBDA", help="TV weight of --method admm-tv")
    p.add_argument("--tv-rho", type=float, default=1.0, metavar="RHO", help="ADMM penalty of --method admm-tv")


def _gamma(text: str):
    """A positive number, or "none" for the unregularised data step."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or none, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number or none, got {text}")
    return value


def _noise_std(text: str):
    """A number in [0, 1] units, "auto" (estimated from the measurement) or "none" (noise-free: 0, which
    svimg.sample treats as None; an option left out stays None, "not given"), checked by
    :func:`svimg.sampling.noise_level.check_noise_std`."""
    from ..sampling.noise_level import check_noise_std

    if text.lower() == "none":
        return 0.0
    try:
        return check_noise_std("auto" if text.lower() == "auto" else _nonneg_float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _noise_sigma(text: str) -> float:
    """A measurement noise level to add, in [0, 1] units (the same bound as --noise-std)."""
    from ..sampling.noise_level import check_noise_std

    try:
        return check_noise_std(_nonneg_float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).replace("noise_std", "the noise level")) from None


def _add_sampler(p, noise_std_help="", seed_help=""):
    from ..priors.base import MIRRORS, flips_value
    from ..priors.loaders import BUNDLED_FLIPS
    from ..sampling.data_step import DEFAULT_CG_RTOL, DEFAULT_SMOOTH_T
    from ..sampling.dds import DEFAULT_CG_ITERS, DEFAULT_ETA, DEFAULT_NFE, sample

    p.add_argument("--nfe", type=_positive_int, default=DEFAULT_NFE, help="prior evaluations (diffusion steps)")
    p.add_argument("--eta", type=_nonneg_float, default=DEFAULT_ETA, help="share of fresh noise when re-noising, in [0, 1]")
    p.add_argument("--cg-iters", type=int, default=DEFAULT_CG_ITERS, metavar="N", help="CG iterations per diffusion step")
    p.add_argument("--cg-rtol", type=_nonneg_float, default=DEFAULT_CG_RTOL, metavar="R",
                   help="the noisy (MAP) data steps iterate instead until the residual falls by R "
                        "(svimg.sample's cg_rtol; 0: --cg-iters there too)")
    p.add_argument("--gamma", type=_gamma, default=None, metavar="G",
                   help="data weight of the regularised step (I + G A^T A) x = x0 + G A^T y, for noisy data; "
                        "none solves A^T A x = A^T y (default: none)")
    p.add_argument("--noise-std", type=_noise_std, default=None, metavar="S|auto|none",
                   help="the measurement's Gaussian noise std in [0, 1] units, auto to estimate it, or none for "
                        "noise-free data (the exact last data step); each data step then solves its MAP problem "
                        "with a weight from the schedule (not with --gamma)"
                        + (noise_std_help or " (when omitted: the noise `svimg degrade` recorded in IN, else "
                           f"{inspect.signature(sample).parameters['noise_std'].default})"))
    p.add_argument("--smooth-t", type=_nonneg_float, default=DEFAULT_SMOOTH_T, metavar="S",
                   help="weight of the temporal term of every noisy data step (svimg.sample's smooth_t; 0: off)")
    p.add_argument("--noise-mode", choices=("batch", "initial", "independent"), default="batch",
                   help="which noise draws are shared by all frames (batch = the method)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sampler" + seed_help)
    p.add_argument("--prior", default="bundled", metavar="SPEC",
                   help="image prior: bundled | PATH.pt (from `svimg train-prior`) | adm:PATH | diffusers:PATH")
    p.add_argument("--prior-flips", type=flips_value, choices=tuple(MIRRORS), default=None,
                   metavar="{" + ",".join(map(str, MIRRORS)) + "}",
                   help="mirror images the prior's prediction is averaged over, one network call each "
                        f"(default: the prior's own, {BUNDLED_FLIPS} for bundled and 1 for the others; "
                        "1 and cycle, one mirror per step, are the fastest)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                   help="most frames per prior evaluation; when omitted, as many as fit in the free memory")


def _with_quiet(add_parser):
    """``add_parser`` whose sub-commands accept -q/--quiet too (default SUPPRESS: the global -q stands)."""

    def add(*args, **kwargs):
        p = add_parser(*args, **kwargs)
        _add_quiet(p, default=argparse.SUPPRESS)
        return p

    return add


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="svimg", formatter_class=_Formatter,
                     description="Restore videos with an image diffusion prior (batch-consistent DDS).")
    parser.add_argument("--version", action="version", version=f"svimg {__version__}")
    _add_quiet(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    # -q after COMMAND too; SUPPRESS keeps a -q given before COMMAND when it is not repeated after it
    sub.add_parser = _with_quiet(sub.add_parser)

    p = sub.add_parser("degrade", formatter_class=_Formatter, epilog=OP_HELP,
                       help="apply a degradation (y = A x + noise) to a video",
                       description="Degrade IN with the operators given by --op, optionally add Gaussian noise, "
                                   "and write OUT (.zarr, .tif, .npy, .npz, .mp4, .gif). OUT records the "
                                   "operator so that `svimg restore` can reuse it.")
    p.add_argument("input", metavar="IN", help="video, TIFF stack, zarr store or .npy/.npz file")
    p.add_argument("output", metavar="OUT", help="where to write the degraded video")
    _add_op(p)
    p.add_argument("--noise", type=_noise_sigma, default=0.0, metavar="SIGMA",
                   help="standard deviation of additive Gaussian noise (values in [0, 1])")
    p.add_argument("--seed", type=int, default=0, help="random seed of the noise")
    _add_io(p)

    p = sub.add_parser("restore", formatter_class=_Formatter, epilog=OP_HELP,
                       help="restore a degraded video",
                       description="Restore IN (a measurement y = A x) and write the estimate of x to OUT. "
                                   "Ctrl-C or SIGTERM leaves no partial OUT.")
    p.add_argument("input", metavar="IN", nargs="+",
                   help="the degraded video; several, or a folder of them, are restored as Dask tasks into OUT/")
    p.add_argument("output", metavar="OUT", help="where to write the restoration (a folder for several inputs)")
    _add_op(p, "the operator recorded in IN by `svimg degrade`")
    _add_method(p)
    _add_sampler(p)
    _add_io(p, size=False)
    p.add_argument("--window", type=_positive_int, default=None, metavar="FRAMES",
                   help="restore in overlapping windows of FRAMES frames into a .zarr OUT; an interrupted run "
                        "leaves OUT marked unfinished and rerunning the command resumes it")
    p.add_argument("--dry-run", action="store_true",
                   help="print the forecast line (frames, size, device, batch, peak memory, time) and stop")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="several inputs: Dask scheduler (tcp://host:8786); default a local cluster; sync = one by one")
    p.add_argument("--workers", type=_positive_int, default=2, help="several inputs: workers of the local cluster")

    p = sub.add_parser("evaluate", formatter_class=_Formatter,
                       help="PSNR / SSIM / temporal consistency of a result against the truth",
                       description="Compare RESTORED with TRUTH frame by frame. temporal error = RMS of the "
                                   "difference between consecutive-frame changes (lower is better).")
    p.add_argument("restored", metavar="RESTORED", help="the video to score (any format svimg reads)")
    p.add_argument("truth", metavar="TRUTH", help="the ground truth, same shape")
    p.add_argument("--json", action="store_true", help="print JSON (with per-frame values) instead of a table")
    p.add_argument("--per-frame", action="store_true", help="also print per-frame values in the table")
    p.add_argument("--frames", type=frames_arg, default=None, metavar="N|START:STOP",
                   help="compare only these frames of both videos")
    p.add_argument("--size", type=_positive_int, default=None, metavar="PIXELS",
                   help="centre-crop and resize both videos to PIXELS x PIXELS first (as `svimg degrade --size`)")
    p.add_argument("--lpips", nargs="+", default=None, metavar="WEIGHTS",
                   help="also report LPIPS, with local AlexNet + LPIPS weight files (never downloaded)")

    p = sub.add_parser("demo", formatter_class=_Formatter, epilog=OP_HELP,
                       help="degrade a sample clip, restore it with CG alone and with svimg, compare",
                       description="Degrade a clip the prior never saw, restore it with CG alone and with the "
                                   "diffusion prior, print the metrics and write demo.png (truth / degraded / "
                                   "CG / svimg for a few frames), demo.mp4 (side by side), the videos as .zarr "
                                   "and metrics.json into --out.")
    p.add_argument("--out", default="svimg-demo", metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--clip", default="carphone", help="sample clip (svimg.data.clip name)")
    p.add_argument("--frames", type=frames_arg, default=DEMO_FRAMES, metavar="N|START:STOP",
                   help="these frames of the clip (N = the first N)")
    p.add_argument("--size", type=_positive_int, default=64, metavar="PIXELS",
                   help="frames are centre-cropped and resized to PIXELS x PIXELS")
    p.add_argument("--noise", type=_noise_sigma, default=DEMO_NOISE, metavar="SIGMA",
                   help="standard deviation of additive Gaussian measurement noise")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo files in DIR")
    _add_op(p, " ".join(DEMO_OPS))
    _add_sampler(p, noise_std_help=" (demo default: auto when --noise > 0 and no --gamma)",
                 seed_help=" and of the measurement noise")
    _add_train_prior(sub)
    return parser


def _add_train_prior(sub):
    from ..priors.train import USER_CONFIG
    from ..priors.user_training import DEFAULT_BATCH_SIZE, DEFAULT_SIZE, DEFAULT_STEPS

    p = sub.add_parser("train-prior", formatter_class=_Formatter,
                       help="train a diffusion prior on your own images, videos or stacks",
                       description="Train a prior on every image and frame of SRC (grey data gives a 1-channel "
                                   "prior, RGB a 3-channel one) and write its weights to OUT, for `svimg restore "
                                   "--prior OUT`, svimg.sample(prior=OUT) and napari. Checkpoints go to OUT.run/ "
                                   "every few minutes; --resume continues from the newest. OUT is written at the "
                                   "end; Ctrl-C leaves it as it was.")
    p.add_argument("sources", metavar="SRC", nargs="+",
                   help="folders (searched recursively), images, videos, TIFF stacks, zarr stores, .npy/.npz")
    p.add_argument("output", metavar="OUT", help="weights file to write (e.g. my-prior.pt)")
    p.add_argument("--hours", type=float, default=None, metavar="H", help="stop after H hours of training")
    p.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                   help=f"stop at N optimiser steps of the run (default {DEFAULT_STEPS} without --hours, "
                        "unbounded with it)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUT.run/ from its newest checkpoint (same network; OUT is replaced)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT and start OUT.run/ again")
    p.add_argument("--size", type=_positive_int, default=None, metavar="PIXELS",
                   help=f"training crop side, a multiple of 8 (default {DEFAULT_SIZE}, or the resumed run's)")
    p.add_argument("--min-region", type=_positive_int, default=None, metavar="PIXELS",
                   help="smallest source region of a crop, at most --size (default --size, or the resumed run's); "
                        "smaller regions are enlarged to the crop")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="convert the data to grey (1) or RGB (3); default: the data's own channel count")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help=f"crops per step (default {DEFAULT_BATCH_SIZE}, or the resumed run's)")
    p.add_argument("--width", type=_positive_int, default=None, metavar="C",
                   help=f"network width (model channels), a multiple of 8 (default {USER_CONFIG['model_channels']})")
    p.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="random seed of the crops, noise and initial weights")
    p.add_argument("--checkpoint-minutes", type=float, default=4.0, metavar="M", help="minutes between checkpoints")
    p.add_argument("--max-side", type=_positive_int, default=768, metavar="PIXELS",
                   help="downscale each image so that its shorter side is at most PIXELS first")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
