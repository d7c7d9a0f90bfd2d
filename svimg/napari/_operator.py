"""Degradation settings (what the Degrade and Restore widgets show) <-> an svimg operator.

The settings are a flat dict of plain values, so they can travel in layer
metadata and zarr attrs (as JSON under :data:`METADATA_KEY`): a layer made by
the Degrade widget or the sample data tells the Restore widget which operator
produced it.  Temporal first, then spatial: ``op = spatial @ temporal``.
"""

from __future__ import annotations

import json

import svimg
from svimg.ops import BOUNDARIES, Downsample, GaussianBlur, RandomMask, TemporalPSF

from ._layers import video_to_layer

__all__ = [
    "DEFAULTS", "TEMPORAL", "SPATIAL", "METADATA_KEY",
    "build_operator", "degrade", "settings_from_metadata", "settings_metadata",
]

TEMPORAL = ("uniform", "gaussian", "none")
SPATIAL = ("none", "blur", "downsample", "mask")
METADATA_KEY = "svimg_napari_operator"

DEFAULTS = {
    "temporal": "uniform",  # TemporalPSF(width) | TemporalPSF.gaussian(sigma) | none
    "width": 7,
    "sigma": 1.0,
    "boundary": "circular",
    "spatial": "none",  # GaussianBlur(blur_size, blur_sigma) | Downsample(factor) | RandomMask(ratio, mask_seed)
    "blur_size": 13,
    "blur_sigma": 2.0,
    "factor": 4,
    "ratio": 0.5,
    "mask_seed": 0,
}


def _choice(settings: dict, key: str, allowed: tuple) -> str:
    value = settings[key]
    if value not in allowed:
        raise ValueError(f"{key} must be one of {allowed}, got {value!r}")
    return value


def build_operator(settings: dict):
    """The operator ``spatial @ temporal`` described by ``settings`` (missing keys take :data:`DEFAULTS`).

    Raises ValueError for an unknown key or choice, and when both parts are
    "none" (the identity degrades nothing).
    """
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"settings has unknown key(s) {sorted(unknown)}; expected keys among {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **settings}
    temporal, spatial = _choice(s, "temporal", TEMPORAL), _choice(s, "spatial", SPATIAL)
    _choice(s, "boundary", BOUNDARIES)
    if temporal == spatial == "none":
        raise ValueError("temporal and spatial are both 'none'; choose at least one degradation")
    parts = []
    if temporal == "uniform":
        parts.append(TemporalPSF.uniform(s["width"], boundary=s["boundary"]))
    elif temporal == "gaussian":
        parts.append(TemporalPSF.gaussian(s["sigma"], boundary=s["boundary"]))
    if spatial == "blur":
        parts.append(GaussianBlur(s["blur_size"], s["blur_sigma"]))
    elif spatial == "downsample":
        parts.append(Downsample(s["factor"]))
    elif spatial == "mask":
        parts.append(RandomMask(s["ratio"], seed=s["mask_seed"]))
    op = parts[0]
    for outer in parts[1:]:
        op = outer @ op
    return op


def settings_from_metadata(metadata: dict) -> dict | None:
    """The settings stored in a layer's metadata by :func:`settings_metadata`, or None when absent or unreadable."""
    raw = (metadata or {}).get(METADATA_KEY)
    if not isinstance(raw, str):
        return None
    try:
        settings = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return settings if isinstance(settings, dict) and set(settings) <= set(DEFAULTS) else None


def settings_metadata(settings: dict) -> dict:
    """``{METADATA_KEY: json}``: layer metadata recording the degradation ``settings`` (zarr-friendly)."""
    return {METADATA_KEY: json.dumps({**DEFAULTS, **settings}, sort_keys=True)}


def degrade(video, settings: dict, name: str) -> tuple:
    """``svimg.forward_op(video, build_operator(settings))`` as an image ``LayerDataTuple``.

    The layer is named ``"{name} * {op!r}"``, carries the provenance attrs plus
    :func:`settings_metadata`, and a downsampled result gets scale f and
    translate (f - 1) / 2 in y and x so it overlays the full-resolution input.
    """
    s = {**DEFAULTS, **settings}
    op = build_operator(s)
    placement = {}
    if s["spatial"] == "downsample":
        f = s["factor"]
        placement = {"scale": (1, f, f), "translate": (0, (f - 1) / 2, (f - 1) / 2)}
    y = svimg.forward_op(video, op)
    return video_to_layer(y, name=f"{name} * {op!r}", metadata=settings_metadata(s), **placement)
