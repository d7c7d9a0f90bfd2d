"""Train a prior on your own images, videos or stacks: the function behind ``svimg train-prior``.

:func:`train_prior` reads every image and frame of ``sources``
(:func:`svimg.priors.training_data.read_sources`), trains the network ``USER_CONFIG`` of
:mod:`svimg.priors.train` (its input / output channels those of the data, its width
``model_channels``) with the DDPM loss on multi-scale ``size`` x ``size`` crops, and exports the
EMA weights (fp16) to ``out``.  ``out`` then works wherever a prior is accepted:
``svimg.sample(y, op, prior="out.pt")``, ``svimg restore --prior out.pt``, napari's checkpoint picker.

Files.  The run directory ``OUT.run`` beside ``out`` (``out.pt`` -> ``out.pt.run/``) holds the
checkpoints (one every ``checkpoint_minutes``), ``loss.csv`` and ``config.json``.  ``out`` is
written once, at the end, atomically.  Without ``resume`` an existing ``out`` or run directory is
an error unless ``overwrite`` (which deletes the old run directory once the data has been read).
(A run directory without a checkpoint, left by a run stopped before its first one, is reused.)
With ``resume`` the run continues from its newest checkpoint, with that run's network, and its
crop and batch sizes unless given; ``steps`` counts every step of the run, ``hours`` the wall time
of this call.  Every argument, the sources and the target folder are checked before anything is
written; an error or Ctrl-C leaves ``out`` as it was (the run directory keeps its last checkpoint).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .._device import resolve_device
from .._validate import check_positive_int, check_positive_number

__all__ = ["train_prior", "run_dir_for", "DEFAULT_STEPS", "DEFAULT_SIZE", "DEFAULT_BATCH_SIZE"]

#: Steps when neither ``steps`` nor ``hours`` is given; crop side and crops per step of a new run.
DEFAULT_STEPS = 10_000
DEFAULT_SIZE = 64
DEFAULT_BATCH_SIZE = 8
_RUN_FILES = ("config.json", "loss.csv")  # with ckpt_*.pt / ckpt_*.tmp: what train() writes


def run_dir_for(out) -> Path:
    """The run directory of the weights file ``out``: ``out.pt`` -> ``out.pt.run``."""
    out = Path(out).expanduser()
    return out.with_name(out.name + ".run")


def _check_sources(sources) -> list:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    if not sources or not all(isinstance(s, (str, os.PathLike)) for s in sources):
        raise TypeError(f"sources must be one or more paths of folders, images, videos or stacks, got {sources!r}")
    return sources


def _check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> dict:
    """Refuse an unusable run directory; return its stored settings (config.json) when resuming, else {}."""
    if resume:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"nothing to resume: run directory {str(run_dir)!r} does not exist")
        settings = run_dir / "config.json"
        return json.loads(settings.read_text()) if settings.is_file() else {}
    if run_dir.exists():
        if not run_dir.is_dir():
            raise FileExistsError(f"{str(run_dir)!r} (the run directory) exists and is not a folder; move it")
        if not overwrite and any(run_dir.glob("ckpt_*.pt")):
            raise FileExistsError(f"run directory {str(run_dir)!r} already exists; pass resume=True (--resume) to "
                                  "continue it or overwrite=True (--overwrite) to start again")
        foreign = [p.name for p in run_dir.iterdir() if not (p.name in _RUN_FILES or p.name.startswith("ckpt_"))]
        if foreign:
            raise FileExistsError(f"run directory {str(run_dir)!r} holds files that training did not write "
                                  f"({foreign[0]!r}); move them or remove the folder yourself")
    return {}


def _network(base: dict, resumed: dict | None, width: int | None) -> dict:
    """The ADMUNet config before the data sets its channels: the resumed checkpoint's, or ``base`` at ``width``."""
    if resumed is not None:
        if width is not None and width != resumed["model_channels"]:
            raise ValueError(f"width={width} differs from the resumed run's width {resumed['model_channels']}; "
                             "omit it to continue the run")
        return resumed
    net = {**base, "model_channels": base["model_channels"] if width is None else width}
    if net["model_channels"] % net["norm_groups"]:
        raise ValueError(f"width must be a multiple of {net['norm_groups']}, got {net['model_channels']}")
    return net


def train_prior(
    sources,
    out,
    *,
    hours: float | None = None,
    steps: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    size: int | None = None,
    min_region: int | None = None,
    channels: int | None = None,
    batch_size: int | None = None,
    width: int | None = None,
    lr: float = 4e-4,
    seed: int = 0,
    checkpoint_minutes: float = 4.0,
    max_side: int = 768,
    device=None,
    config: dict | None = None,
    progress: bool = True,
    status: Callable[[str], None] | None = None,
) -> Path:
    """Train a diffusion prior on ``sources`` and write its weights to ``out``; return ``Path(out)``.

    ``sources``: folders (searched recursively), images (.png .jpg .jpeg .webp .bmp), videos,
    TIFF stacks, zarr stores, .npy/.npz; every frame is one training image.  Grey data gives a
    1-channel prior, RGB a 3-channel one; ``channels`` = 1 or 3 converts (mixed counts need it).
    Training stops after ``steps`` optimiser steps of the run (default DEFAULT_STEPS, unbounded
    when only ``hours`` is given) or ``hours`` of wall time, whichever comes first.  ``size``: crop
    side in pixels (default DEFAULT_SIZE), a multiple of 2 ** (levels - 1) = 8; ``width``: the
    network's ``model_channels`` (default USER_CONFIG's); ``batch_size``: default DEFAULT_BATCH_SIZE.
    ``min_region``: the smallest source region of a crop, 1..``size`` (default ``size``, or the resumed
    run's; smaller enlarges some regions to the crop, see :func:`~svimg.priors.training_data.random_crops`).
    ``max_side``: images are first downscaled so that their shorter side is at most this.
    ``config`` replaces entries of ``USER_CONFIG`` (advanced; channels always follow the data).
    ``status`` receives one-line progress messages.  See the module docstring for the files and ``resume``.
    """
    import torch

    from ..io._paths import check_target
    from .train import USER_CONFIG, export_weights, latest_checkpoint, train
    from .training_data import read_sources

    say = status or (lambda message: None)
    sources = _check_sources(sources)
    if hours is not None:
        hours = check_positive_number(hours, "hours")
    if steps is not None:
        steps = check_positive_int(steps, "steps")
    for name, value in (("size", size), ("min_region", min_region), ("batch_size", batch_size), ("width", width)):
        if value is not None:
            check_positive_int(value, name)
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None (from the data), got {channels!r}")
    lr = check_positive_number(lr, "lr")
    checkpoint_minutes = check_positive_number(checkpoint_minutes, "checkpoint_minutes")
    max_side = check_positive_int(max_side, "max_side", 16)
    dev = resolve_device(device)
    out = Path(out).expanduser()
    run_dir = run_dir_for(out)
    stored = _check_run_dir(run_dir, resume, overwrite)
    if out.exists() and not (overwrite or resume):
        raise FileExistsError(f"{str(out)!r} already exists; pass resume=True (--resume) to continue its training "
                              "or overwrite=True (--overwrite) to start again")
    check_target(out, True)  # folder missing or not writable
    newest = latest_checkpoint(run_dir) if resume else None
    resumed = torch.load(newest, map_location="cpu", weights_only=False)["config"] if newest else None
    net = _network(resumed or {**USER_CONFIG, **(config or {})}, resumed, width)
    size = size or stored.get("crop", DEFAULT_SIZE)
    min_region = min_region or stored.get("min_region")
    batch_size = batch_size or stored.get("batch_size", DEFAULT_BATCH_SIZE)
    multiple = 2 ** (len(net["channel_mult"]) - 1)
    if size % multiple:
        raise ValueError(f"size must be a multiple of {multiple} (the network halves the crop "
                         f"{len(net['channel_mult']) - 1} times), got {size}")
    if min_region is not None and min_region > size:
        raise ValueError(f"min_region must be at most size={size}, got {min_region}")
    if resumed:
        if channels not in (None, resumed["in_channels"]):
            raise ValueError(f"channels={channels} differs from the resumed run's {resumed['in_channels']} "
                             "channel(s); omit --channels to continue the run")
        channels = resumed["in_channels"]  # the data is converted to the run's channels

    say(f"reading {len(sources)} source(s)")
    pool = read_sources(sources, max_side=max_side, channels=channels)
    net = {**net, "in_channels": pool[0].shape[0], "out_channels": pool[0].shape[0]}
    say(f"{len(pool)} training image(s), {net['in_channels']} channel(s); run directory {run_dir}"
        + (f"; resuming from {newest.name}" if newest else ""))
    if overwrite and not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    max_steps = steps or (DEFAULT_STEPS if hours is None else 2**62)
    ckpt = train(run_dir, config=net, batch_size=batch_size, crop=size, min_region=min_region, lr=lr,
                 max_steps=max_steps, max_hours=hours, checkpoint_minutes=checkpoint_minutes, seed=seed,
                 device=str(dev), progress=progress, pools=[pool])
    sha = export_weights(ckpt, out)
    say(f"wrote {out} ({ckpt.name}, sha256 {sha[:12]})")
    return out

