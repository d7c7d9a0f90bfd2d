"""Learned metrics that need network weights: LPIPS (AlexNet) and FVD (I3D).

svimg never downloads anything: these metrics run only on weights the user
already has on disk, named by an argument or an environment variable, and
raise ``FileNotFoundError("... weights not found at PATH ...")`` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .._convert import to_volume
from .._validate import check_positive_int
from ..io._resize import center_crop_resize
from ._quality import paired_volumes

__all__ = ["lpips", "fvd", "frechet_distance", "LPIPS_ENV", "FVD_ENV"]

LPIPS_ENV = "SVIMG_LPIPS_WEIGHTS"
FVD_ENV = "SVIMG_FVD_WEIGHTS"


def _weight_paths(weights, env: str, what: str, how: str) -> list[Path]:
    """The weight files named by ``weights`` (a path or a list of paths) or by ``$env`` (os.pathsep-separated)."""
    if weights is None:
        listed = os.environ.get(env, "")
        if not listed:
            raise FileNotFoundError(
                f"{what} weights not found: pass weights=PATH or set ${env} ({how}); svimg never downloads weights"
            )
        weights = listed.split(os.pathsep)
    paths = [Path(w).expanduser() for w in ([weights] if isinstance(weights, (str, os.PathLike)) else weights)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{what} weights not found at {str(p)!r} ({how}); svimg never downloads weights")
    return paths


# ---------------------------------------------------------------- LPIPS

_LPIPS_HOW = ("torchvision's AlexNet state dict, e.g. alexnet-owt-7be5be79.pth, plus the LPIPS v0.1 linear layers "
              "alex.pth from the lpips package; give both paths")


class _AlexLPIPS(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018).

    Inputs in [-1, 1] are shifted/scaled per channel, passed through AlexNet's
    five conv+ReLU stages; at each stage the features are unit-normalised
    along channels, their squared difference weighted by a learned 1x1
    convolution and averaged over space; the five values are summed.
    """

    CHANNELS = (64, 192, 384, 256, 256)
    TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs whose outputs are compared
    CONVS = (0, 3, 6, 8, 10)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def _taps(self, x):
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a, b):
        total = 0.0
        for lin, fa, fb in zip(self.lins, self._taps(a), self._taps(b)):
            total = total + lin((fa - fb) ** 2).mean(dim=(2, 3))
        return total[:, 0]

    @classmethod
    def from_files(cls, paths: list[Path]) -> "_AlexLPIPS":
        merged = {}
        for p in paths:
            merged.update(torch.load(p, map_location="cpu", weights_only=True))
        merged = {k.removeprefix("module."): v for k, v in merged.items()}
        net = cls()
        wanted = {f"features.{i}.{w}": f"features.{i}.{w}" for i in cls.CONVS for w in ("weight", "bias")}
        wanted.update({f"lin{k}.model.1.weight": f"lins.{k}.weight" for k in range(5)})
        missing = sorted(k for k in wanted if k not in merged)
        if missing:
            raise ValueError(f"LPIPS weights {[str(p) for p in paths]} lack {missing}; expected {_LPIPS_HOW}")
        state = {ours: merged[theirs] for theirs, ours in wanted.items()}
        state.update(shift=net.shift, scale=net.scale)
        net.load_state_dict(state)
        return net.eval()


def lpips(x, ref, weights=None, *, per_frame: bool = False, device=None):
    """LPIPS distance (AlexNet, v0.1) between ``x`` and ``ref``, frame by frame; lower is more similar.

    ``weights``: the local weight files (a path or a list of paths) holding
    torchvision's AlexNet ``features.*`` tensors and LPIPS's ``lin0..lin4``
    layers, or None to read ``$SVIMG_LPIPS_WEIGHTS`` (paths separated by
    ``os.pathsep``).  Frames in [0, 1] are mapped to [-1, 1]; one channel is
    repeated to three; frames must be at least 32 x 32.  Returns the (T,)
    float64 array when ``per_frame``, else its mean.
    """
    paths = _weight_paths(weights, LPIPS_ENV, "LPIPS", _LPIPS_HOW)
    a, b = paired_volumes(x, ref)
    if a.shape[1] not in (1, 3):
        raise ValueError(f"lpips needs 1 or 3 channels, got {a.shape[1]}")
    if min(a.shape[-2:]) < 32:
        raise ValueError(f"lpips (AlexNet) needs frames of at least 32x32, got {a.shape[-2]}x{a.shape[-1]}")
    net = _AlexLPIPS.from_files(paths).to(device or "cpu")

    def prep(v):
        return (v.expand(-1, 3, -1, -1) * 2 - 1).to(device=device or "cpu", dtype=torch.float32)

    with torch.no_grad():
        values = net(prep(a), prep(b)).double().cpu().numpy()
    return values if per_frame else float(values.mean())


# ---------------------------------------------------------------- FVD

_FVD_HOW = ("a TorchScript I3D feature extractor called as f(video, rescale=False, resize=False, "
            "return_features=True), e.g. StyleGAN-V's i3d_torchscript.pt")


def _videos(videos, name: str) -> list[torch.Tensor]:
    """A 5-D (N, T, C, H, W) array or a sequence of videos -> list of (T, C, H, W) float tensors of one shape."""
    if isinstance(videos, (list, tuple)):
        items = [to_volume(v, f"{name}[{i}]").tensor for i, v in enumerate(videos)]
    else:
        arr = videos.detach() if isinstance(videos, torch.Tensor) else torch.from_numpy(np.asarray(videos, dtype=np.float32))
        if arr.ndim != 5:
            raise ValueError(f"{name} must be a sequence of videos or an (N, T, C, H, W) array, got shape {tuple(arr.shape)}")
        items = [to_volume(v, f"{name}[{i}]").tensor for i, v in enumerate(arr)]
    if len(items) < 2:
        raise ValueError(f"fvd compares distributions: {name} needs at least 2 videos, got {len(items)}")
    shapes = {tuple(v.shape) for v in items}
    if len(shapes) != 1:
        raise ValueError(f"every video in {name} must have the same shape, got {sorted(shapes)}")
    if items[0].shape[1] not in (1, 3):
        raise ValueError(f"fvd needs 1 or 3 channels, got {items[0].shape[1]}")
    return items


def _i3d_features(detector, items, batch_size: int, device) -> np.ndarray:
    feats = []
    for start in range(0, len(items), batch_size):
        batch = []
        for v in items[start : start + batch_size]:
            v = torch.from_numpy(center_crop_resize(v.cpu().float().numpy(), 224)).expand(-1, 3, -1, -1)
            batch.append((v * 2 - 1).permute(1, 0, 2, 3))  # (C, T, 224, 224) in [-1, 1]
        with torch.no_grad():
            out = detector(torch.stack(batch).to(device), rescale=False, resize=False, return_features=True)
        feats.append(out.double().cpu().numpy().reshape(len(batch), -1))
    return np.concatenate(feats)


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) between Gaussian fits (mean, sample covariance) of two
    feature sets (rows are samples)."""
    from scipy import linalg

    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(f1, rowvar=False)), np.atleast_2d(np.cov(f2, rowvar=False))
    root = linalg.sqrtm(s1 @ s2).real
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root), 0.0))


def fvd(videos, refs, weights=None, *, batch_size: int = 8, device=None) -> float:
    """Fréchet video distance between two sets of videos (lower is closer).

    ``videos`` and ``refs``: sequences of videos (each (T, C, H, W) or (T, H, W),
    any array type, values in [0, 1]) or (N, T, C, H, W) arrays, at least two
    videos per set.  ``weights``: the path of a TorchScript I3D feature
    extractor (or an already loaded module), or None to read
    ``$SVIMG_FVD_WEIGHTS``.  Each video is centre-cropped and resized to
    224 x 224, mapped to [-1, 1], given as (N, 3, T, 224, 224), and its
    feature vector taken; FVD is the Fréchet distance between Gaussian fits of
    the two feature sets (:func:`frechet_distance`).  With few videos the
    covariances are rank-deficient and FVD is only a rough indication.
    """
    if isinstance(weights, nn.Module) or (callable(weights) and not isinstance(weights, (str, os.PathLike))):
        detector = weights
    else:
        path = _weight_paths(weights, FVD_ENV, "FVD", _FVD_HOW)[0]
        detector = torch.jit.load(str(path), map_location=device or "cpu").eval()
    batch_size = check_positive_int(batch_size, "batch_size")
    a, b = _videos(videos, "videos"), _videos(refs, "refs")
    dev = device or "cpu"
    return frechet_distance(_i3d_features(detector, a, batch_size, dev), _i3d_features(detector, b, batch_size, dev))
