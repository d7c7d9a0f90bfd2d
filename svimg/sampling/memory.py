"""What a sampling run will take before it runs: peak memory, time, and what would make it shorter.

The forecast sits above the rest of the sampler (it reads :mod:`.budget`, :mod:`._common` and
:mod:`.windows`; nothing below imports it).  Peak memory and batch follow :mod:`.budget`; the prior's
cost per frame comes from a probe that never runs a full frame:

    f = crop_bytes * (H W) / (h w)          s = crop_seconds * (H W) / (h w)

where the prior runs on :data:`PROBE_CROPS` random crops of h x w = min(H, :data:`PROBE_SIDE`) x
min(W, :data:`PROBE_SIDE`) pixels, ``crop_bytes`` is the peak memory above the start of the first
call per crop (:class:`~svimg.sampling.budget.measured`: CUDA's allocator, the resident size on
the CPU; the first measurement in the process is kept, as freed memory that stays mapped hides later
peaks) and ``crop_seconds`` its time per crop on a second call (the first also warmed the engine up:
a first export of an ONNX graph, the engine's timed choice, :mod:`svimg.priors.engine`).  The
scaling is exact for the network's arithmetic: convolutions and windowed attention cost the same
per pixel at any size (the bundled prior: 227 kFLOP per pixel at 64 x 64, 256 x 256, 272 x 640 and
2160 x 3840, torch's FlopCounterMode).  The run then takes

    seconds = nfe * windows * span * s      (span: the frames of one pass or window)

A run longer than :data:`LONG_RUN` seconds names what would shorten it (:meth:`Forecast.line`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .._api import check_measurement
from .budget import SAFETY, PriorCost, choose_batch, free_memory, measured, process_memory, working_set
from ._common import resolve_device, resolve_prior
from .prior_eval import PriorEvaluator
from .schedule import DDSSchedule
from .windows import split_temporal, window_starts

__all__ = ["PROBE_SIDE", "PROBE_CROPS", "LONG_RUN", "probe_prior", "window_that_fits", "Forecast", "forecast",
           "forecast_shape"]

PROBE_SIDE = 128
PROBE_CROPS = 2
LONG_RUN = 600.0
_CROP_BYTES: dict = {}  # (weights or prior, flips, crops, dtype, device) -> bytes per crop first measured


def probe_prior(evaluator, frame_shape, t: int, dtype, device) -> PriorCost:
    """The prior's memory and seconds for one (C, H, W) frame, scaled from crops (module docstring)."""
    C, H, W = (int(s) for s in frame_shape)
    h, w = min(H, PROBE_SIDE), min(W, PROBE_SIDE)
    x = torch.randn((PROBE_CROPS, C, h, w), dtype=dtype, generator=torch.Generator().manual_seed(0)).to(device)
    prior = getattr(evaluator, "prior", evaluator)
    key = (getattr(prior, "sha256", None) or id(prior), str(getattr(prior, "flips", 1)), tuple(x.shape), str(dtype),
           str(device))
    with torch.no_grad():
        with measured(device) as m:  # the first call: peak memory; the engine exports, chooses and warms up here
            evaluator(x, t)
        # memory freed by an earlier call stays with the process and hides a later peak: keep the first
        crop_bytes = _CROP_BYTES.setdefault(key, m.extra_bytes / PROBE_CROPS)
        start = time.perf_counter()
        evaluator(x, t)
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        crop_seconds = (time.perf_counter() - start) / PROBE_CROPS
    scale = H * W / (h * w)
    return PriorCost(max(int(crop_bytes * scale), C * H * W * x.element_size()), crop_seconds * scale)


def window_that_fits(frames: int, frame_bytes: int, volumes: int, cost: PriorCost, free: int) -> int:
    """The most frames (at most ``frames``) whose volumes and a one-frame prior call fit in ``SAFETY * free``."""
    room = SAFETY * free - cost.frame_bytes
    return int(min(frames, room // (volumes * frame_bytes))) if room > 0 else 0


@dataclass(frozen=True)
class Forecast:
    """What a run will take (see :func:`forecast`); ``line()`` is the one line the CLI and napari show.

    ``calls_per_eps``: network calls per prior evaluation (the prior's mirror images, 1 for "cycle").
    """

    frames: int
    frame_shape: tuple
    device: str
    batch_size: int
    peak_bytes: int
    free_bytes: int
    seconds: float
    nfe: int
    window: int | None
    fits: bool
    calls_per_eps: int = 1

    def line(self) -> str:
        C, H, W = self.frame_shape
        gb = 1e9
        where = f"windows of {self.window} frames" if self.window else "one pass"
        if not self.fits:
            return (f"cannot run: {self.frames} frames of {C}x{H}x{W} need {self.peak_bytes / gb:.1f} GB even in "
                    f"the smallest window, {self.free_bytes / gb:.1f} GB is free on {self.device}")
        line = (f"forecast: {self.frames} frames of {C}x{H}x{W} on {self.device}, {where}, batch {self.batch_size}, "
                f"peak {self.peak_bytes / gb:.1f} GB of {self.free_bytes / gb:.1f} GB free, "
                f"about {_duration(self.seconds)} for nfe {self.nfe}")
        shorter = self.shorter()
        return line + ("; shorter: " + ", ".join(shorter) if shorter else "")

    def shorter(self) -> list[str]:
        """What would make a run longer than :data:`LONG_RUN` seconds shorter (empty for a shorter run).

        Time is linear in nfe, in the frames and in the network calls per evaluation.
        """
        if self.seconds <= LONG_RUN:
            return []
        ways = []
        if self.nfe > 1:
            ways.append(f"nfe {self.nfe // 2} (about {_duration(self.seconds * (self.nfe // 2) / self.nfe)})")
        if self.calls_per_eps > 1:
            ways.append(f"prior flips 'cycle', one network call per step "
                        f"(about {_duration(self.seconds / self.calls_per_eps)})")
        if self.frames > 1:
            ways.append(f"fewer frames per run (about {_duration(self.seconds / self.frames)} per frame)")
        if torch.device(self.device).type == "cpu":
            ways.append("a GPU (device='cuda')")
        return ways


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def forecast_shape(x_shape, *, evaluator, t_first: int, nfe: int, dtype, device, weighted: bool = False,
                   batch_size=None, window: int | None = None, auto_window: int | None = None, support: int = 1,
                   cost: PriorCost | None = None) -> Forecast:
    """Memory and time of restoring a (T, C, H, W) video (module docstring), from the prior's probe on crops.

    One pass, or windows of ``window`` frames when given.  With ``auto_window``
    (the shortest window allowed) and volumes that do not fit in one pass, the
    longest window that fits is planned instead (``Forecast.window``).  Each
    window also holds ``support - 1`` unknown frames beyond its edges and
    windows overlap by ``max(support, window // 2)``
    (:func:`svimg.sampling.windows.default_overlap`).  ``batch_size`` given is kept; ``weighted``: the
    data steps have a weight (``gamma`` or ``noise_std``), one more volume.  ``cost`` given skips the probe.
    """
    T, C, H, W = (int(s) for s in x_shape)
    device = torch.device(device)
    frame_bytes = C * H * W * torch.empty((), dtype=dtype).element_size()
    _, volumes = working_set(device, dtype, T * frame_bytes, weighted)
    cost = cost or probe_prior(evaluator, (C, H, W), t_first, dtype, device)
    free = free_memory(device)
    now = 0 if device.type == "cuda" else process_memory(device)
    extra = support - 1
    if window is None and auto_window is not None and choose_batch(T, T * frame_bytes, volumes, cost, free, device) < 1:
        window = max(window_that_fits(T + extra, frame_bytes, volumes, cost, free) - extra, auto_window)
    span = T if window is None or window >= T else window + extra
    need = volumes * span * frame_bytes
    batch = choose_batch(span, need, 1, cost, free, device) if batch_size is None else batch_size
    fits = batch >= 1 and need + batch * cost.frame_bytes <= SAFETY * free
    windows = 1 if span == T else len(window_starts(T, window, max(support, window // 2)))
    calls = int(getattr(evaluator.prior, "calls_per_eps", 1))
    return Forecast(T, (C, H, W), str(device), int(batch), int(now + need + max(batch, 1) * cost.frame_bytes),
                    int(free), nfe * windows * span * cost.frame_seconds, int(nfe), None if span == T else window,
                    bool(fits), calls)


def forecast(y, op, prior=None, *, nfe: int = 20, gamma=None, noise_std=None, batch_size=None, device=None,
             window=None, auto_window: bool = True) -> Forecast:
    """What :func:`svimg.sample` (or, when the volumes do not fit, the windowed path) will take on ``y``.

    ``gamma`` / ``noise_std`` as for :func:`svimg.sample` (either, given, counts the weighted data
    step's extra volume, as ``sample`` does).
    Reads only ``y``'s shape and dtype (a lazy DataArray stays lazy) and runs the prior on a few
    small crops (:func:`probe_prior`), never on a whole frame: it costs about the same on any size.
    ``auto_window`` plans windows when one pass
    does not fit and ``op`` splits into a temporal PSF and per-frame parts
    (:func:`svimg.sampling.windows.split_temporal`); the shortest window allowed
    is twice the PSF support.  The CLI's ``svimg restore`` and the napari
    Restore widget show ``forecast(...).line()``.
    """
    shape = tuple(int(s) for s in y.shape)
    shape = shape if len(shape) == 4 else (shape[0], 1, *shape[1:])
    x_shape = tuple(check_measurement(op, torch.empty(shape, device="meta")))
    dev = resolve_device(device)
    prior = resolve_prior(prior, dev)
    dtype = torch.float64 if str(getattr(y, "dtype", "")) in ("float64", "torch.float64") else torch.float32
    try:
        psf, _ = split_temporal(op)
        support = psf.support if psf is not None else 1
    except (TypeError, ValueError):
        support, auto_window = 1, False
    return forecast_shape(x_shape, evaluator=PriorEvaluator(prior, x_shape[1]),
                          t_first=DDSSchedule(nfe, prior.betas).timesteps[0], nfe=nfe, dtype=dtype, device=dev,
                          weighted=gamma is not None or noise_std is not None, batch_size=batch_size,
                          window=window,
                          auto_window=2 * support if auto_window else None, support=support)

