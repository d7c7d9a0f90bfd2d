"""diffusers UNet2DModel as a prior (diffusers is an optional extra, imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .base import NetworkPrior, file_sha256
from .schedule import linear_betas

__all__ = ["from_diffusers"]


def _diffusers():
    try:
        import diffusers
    except ImportError as err:
        raise ImportError("diffusers priors need the optional extra: pip install 'svimg[diffusers]'") from err
    return diffusers


class _UNetEps(nn.Module):
    """``net(x, t)`` -> the UNet2DModel's output tensor."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        return self.unet(x, t).sample


def _find_scheduler_config(root: Path) -> Path | None:
    for cand in (root / "scheduler" / "scheduler_config.json", root / "scheduler_config.json",
                 root.parent / "scheduler" / "scheduler_config.json"):
        if cand.is_file():
            return cand
    return None


def _scheduler_betas(scheduler) -> torch.Tensor:
    betas = getattr(scheduler, "betas", None)
    if betas is None:
        raise ValueError(f"scheduler {type(scheduler).__name__} has no betas; pass a DDPM/DDIM-style scheduler")
    pred = getattr(scheduler.config, "prediction_type", "epsilon")
    if pred != "epsilon":
        raise ValueError(f"scheduler prediction_type is {pred!r}; svimg priors need 'epsilon'")
    return torch.as_tensor(betas, dtype=torch.float64)


def from_diffusers(model_or_path, *, scheduler=None, device=None, flips: int = 1) -> NetworkPrior:
    """Wrap a diffusers ``UNet2DModel`` (or a directory holding one) as a prior.

    ``model_or_path``: a UNet2DModel, a model directory (``config.json`` + weights) or a pipeline
    directory (``unet/`` + ``scheduler/``).  Betas come from ``scheduler`` or the scheduler config
    found next to the model; otherwise linear 1e-4..0.02 over 1000 steps.  A UNet with 2C output
    channels (learned variance) gives eps = the first C.  ``flips``: mirror images eps averages over
    (:class:`~svimg.priors.base.NetworkPrior`).
    """
    diffusers = _diffusers()
    name, sched_cfg, sha = "diffusers:UNet2DModel", None, None
    if isinstance(model_or_path, (str, Path)):
        root = Path(model_or_path).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"diffusers model directory {str(root)!r} does not exist")
        model_dir = root / "unet" if (root / "unet" / "config.json").is_file() else root
        if not (model_dir / "config.json").is_file():
            raise ValueError(f"{str(root)!r} holds no UNet2DModel (no config.json, nor unet/config.json)")
        try:
            unet = diffusers.UNet2DModel.from_pretrained(model_dir)
        except Exception as err:
            raise ValueError(f"cannot load a UNet2DModel from {str(model_dir)!r}: {err}") from err
        name, sched_cfg = f"diffusers:{root.name}", _find_scheduler_config(model_dir)
        weights = sorted(model_dir.glob("diffusion_pytorch_model*.safetensors")) + sorted(model_dir.glob("*.bin"))
        sha = file_sha256(weights[0]) if len(weights) == 1 else None
    elif isinstance(model_or_path, diffusers.UNet2DModel):
        unet = model_or_path
    else:
        raise TypeError(f"model_or_path must be a diffusers UNet2DModel or a directory, got {type(model_or_path).__name__}")

    if scheduler is None and sched_cfg is not None:
        cfg = json.loads(sched_cfg.read_text())
        cls = getattr(diffusers, cfg.get("_class_name", "DDPMScheduler"), diffusers.DDPMScheduler)
        scheduler = cls.from_config(cfg)
    betas = _scheduler_betas(scheduler) if scheduler is not None else linear_betas()

    c_in, c_out = unet.config.in_channels, unet.config.out_channels
    if c_out not in (c_in, 2 * c_in):
        raise ValueError(f"UNet2DModel has {c_in} input and {c_out} output channels; expected {c_in} or {2 * c_in}")
    multiple = 2 ** (len(unet.config.block_out_channels) - 1)
    prior = NetworkPrior(_UNetEps(unet), betas, channels=c_in, multiple=multiple, name=name, sha256=sha,
                         config=dict(unet.config), flips=flips)
    return prior.to(device) if device is not None else prior
