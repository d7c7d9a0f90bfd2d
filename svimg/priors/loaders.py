"""Loading priors: ADM checkpoints, the bundled weights, and spec strings for the CLI and napari."""

from __future__ import annotations

import functools
import importlib.resources
import os
from pathlib import Path

import torch

from .adm import ADM256_UNCOND, ADMUNet
from .base import CYCLE, NetworkPrior, file_sha256
from .schedule import linear_betas

__all__ = ["adm", "bundled", "load", "WEIGHTS_SUFFIXES", "read_checkpoint", "check_state_dict", "BUNDLED_RESOURCE",
           "BUNDLED_FLIPS"]

#: Location of the bundled weights inside the installed package.
BUNDLED_RESOURCE = ("svimg.priors", "weights/bundled.pt")
#: The bundled prior's mirror averaging by default (NetworkPrior ``flips``): one mirror image per timestep,
#: the best quality per second measured (docs/bundled_prior.md#mirror-averaging).
BUNDLED_FLIPS = CYCLE


def read_checkpoint(path) -> dict:
    """torch.load ``path`` (tensors only, memory-mapped when possible) with errors naming the file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as err:
        reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0]  # torch's messages run over many lines
        raise ValueError(
            f"cannot read checkpoint {str(path)!r} ({type(err).__name__}{': ' + reason if reason else ''}); "
            "the file is truncated, corrupt or not a torch state_dict"
        ) from err
    if not isinstance(obj, dict):
        raise ValueError(f"checkpoint {str(path)!r} holds a {type(obj).__name__}, expected a state_dict (dict)")
    return obj


def check_state_dict(model: torch.nn.Module, state: dict, path) -> None:
    """Raise ValueError naming ``path``, the first mismatched key and what was expected, unless
    ``state`` has exactly ``model``'s keys and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in expected.items():
        if key not in state:
            problem = f"first mismatched key {key!r}: missing from the file (expected shape {shape})"
            break
        got = tuple(getattr(state[key], "shape", ()))
        if got != shape:
            problem = f"first mismatched key {key!r}: expected shape {shape}, found {got}"
            break
    else:
        extra = [k for k in state if k not in expected]
        if not extra:
            return
        problem = f"first mismatched key {extra[0]!r}: not in the model ({len(extra)} unexpected key(s))"
    raise ValueError(f"checkpoint {str(path)!r} does not match the network configuration: {problem}")


def _schedule_betas(obj: dict) -> torch.Tensor:
    sched = obj.get("schedule") or {}
    if sched and sched.get("kind") != "linear":
        raise ValueError(f"unsupported schedule {sched!r} in checkpoint; expected a linear schedule")
    return linear_betas(int(sched.get("steps", 1000)), float(sched.get("beta_start", 1e-4)),
                        float(sched.get("beta_end", 0.02)))


def adm(path, *, device=None, name: str | None = None, flips: int = 1, **config) -> NetworkPrior:
    """Load a guided-diffusion (ADM) checkpoint as a prior: ``adm("256x256_diffusion_uncond.pt")``.

    ``config`` overrides ``ADM256_UNCOND`` (e.g. ``model_channels=128, channel_mult=(1, 1, 2, 3, 4)``).
    Files written by svimg (``{"config", "state_dict", "schedule"}``) carry their own config.
    The state_dict must match exactly (strict); betas are linear 1e-4..0.02 over 1000 steps unless
    the file says otherwise.  With learned sigma the network outputs 2C channels; eps is the first C.
    ``flips``: mirror images eps averages over (:class:`~svimg.priors.base.NetworkPrior`).
    """
    obj = read_checkpoint(path)
    if isinstance(obj.get("state_dict"), dict):
        state, cfg = obj["state_dict"], {**ADM256_UNCOND, **obj.get("config", {}), **config}
    else:
        state, cfg = obj, {**ADM256_UNCOND, **config}
    with torch.device("meta"):
        net = ADMUNet(**cfg)
    check_state_dict(net, state, path)
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    prior = NetworkPrior(net, _schedule_betas(obj), channels=cfg["in_channels"], multiple=net.multiple,
                         name=name or f"adm:{Path(path).name}", sha256=file_sha256(path), config=cfg,
                         flips=flips)
    return prior.to(device) if device is not None else prior


def _bundled_resource():
    package, rel = BUNDLED_RESOURCE
    return importlib.resources.files(package).joinpath(rel)


@functools.lru_cache(maxsize=3)
def bundled(flips: int | str = BUNDLED_FLIPS) -> NetworkPrior:
    """The prior trained by this project and shipped in the package (cached; see docs/bundled_prior.md).

    A small ADM UNet (eps-prediction, linear betas 1e-4..0.02, 1000 steps) whose eps uses ``flips``
    mirror images (default BUNDLED_FLIPS = "cycle": one network call per eps, one mirror per timestep;
    4 averages four mirrors in four calls, 0.17-0.19 dB better than 1 as a one-step denoiser on the
    card's 256 x 256 frames, a few hundredths of a dB in a restoration).
    Raises FileNotFoundError when the weights file is missing: never a silently random network.
    """
    resource = _bundled_resource()
    if not resource.is_file():
        raise FileNotFoundError(
            "the bundled prior's weights (svimg/priors/weights/bundled.pt) are missing from the installed "
            "package; reinstall svimg, or train them with examples/train_prior.py and export them there"
        )
    with importlib.resources.as_file(resource) as path:
        return adm(path, name="svimg-bundled", flips=flips)


#: Suffixes that make a spec without a known prefix a weights file (``"out.pt"`` = ``"adm:out.pt"``).
WEIGHTS_SUFFIXES = (".pt", ".pth", ".ckpt")


def load(spec, *, flips: int | str | None = None) -> object:
    """Prior from a spec: "bundled", "adm:PATH", "diffusers:PATH", or PATH of a weights file.

    A plain path (a string or ``os.PathLike``) naming an existing file, or ending in .pt, .pth or
    .ckpt, is read as "adm:PATH" (e.g. the output of ``svimg train-prior``).  ``flips``: mirror
    images eps averages over (1, 2 or 4, or "cycle"); None: the loader's default (BUNDLED_FLIPS for
    "bundled", else 1).
    """
    opts = {} if flips is None else {"flips": flips}
    if isinstance(spec, os.PathLike):
        return adm(spec, **opts)
    if not isinstance(spec, str):
        raise TypeError(f"spec must be a string ('bundled', 'adm:PATH', 'diffusers:PATH' or PATH), "
                        f"got {type(spec).__name__}")
    kind, sep, arg = spec.partition(":")
    if spec == "bundled":
        return bundled(**opts)
    if sep and arg and kind == "adm":
        return adm(arg, **opts)
    if sep and arg and kind == "diffusers":
        from .hf import from_diffusers

        return from_diffusers(arg, **opts)
    if Path(spec).expanduser().is_file() or spec.lower().endswith(WEIGHTS_SUFFIXES):
        return adm(spec, **opts)
    raise ValueError(f"spec: unknown prior {spec!r}; expected 'bundled', 'adm:PATH', 'diffusers:PATH' "
                     f"or the path of a weights file ({', '.join(WEIGHTS_SUFFIXES)})")
