"""Degradation settings (what the Degrade and Restore widgets show) <-> operator specs <-> an svimg operator.

The widgets hold a flat dict of plain values (:data:`DEFAULTS`).  It is written
as the command line's operator specs (:mod:`svimg.cli.opspec`, e.g.
``["temporal:uniform:7:circular", "spatial:sr:4"]``), built by that parser, and
recorded in layer metadata under the attribute ``svimg degrade`` writes
(``svimg_op_spec``).  So a stack degraded in napari and saved restores with
``svimg restore`` without ``--op``, and a store written by ``svimg degrade``
opens in napari with the Restore widget preset.
"""

from __future__ import annotations

import inspect

import svimg
from svimg.cli.opspec import DEFAULT_BOUNDARY, OP_SPEC_ATTR
from svimg.cli.opspec import parse_op, parse_ops
from svimg.ops import TemporalPSF

from ._layers import video_to_layer

__all__ = [
    "DEFAULTS", "TEMPORAL", "SPATIAL", "OP_SPEC_ATTR",
    "settings_to_specs", "settings_from_specs", "build_operator", "degrade",
]

TEMPORAL = ("uniform", "gaussian", "none")
SPATIAL = ("none", "blur", "downsample", "mask")


DEFAULTS = {
    "temporal": "uniform",  # TemporalPSF.uniform(width) | TemporalPSF.gaussian(sigma) | none
    "width": 7,
    "sigma": inspect.signature(TemporalPSF.gaussian).parameters["sigma"].default,
    "boundary": DEFAULT_BOUNDARY,  # "valid": a clip cut from a longer recording (N frames in, N - support + 1 out)
    "spatial": "none",  # GaussianBlur(blur_size, blur_sigma) | Downsample(factor) | RandomMask(ratio, mask_seed)
    "blur_size": 13,
    "blur_sigma": 2.0,
    "factor": 4,
    "ratio": 0.5,
    "mask_seed": 0,
}

# spec kind -> (settings key, its choice, the settings holding the spec's fields, in order)
_SPECS = {
    "temporal:uniform": ("temporal", "uniform", ("width", "boundary")),
    "temporal:gaussian": ("temporal", "gaussian", ("sigma", "boundary")),
    "spatial:blur": ("spatial", "blur", ("blur_size", "blur_sigma")),
    "spatial:sr": ("spatial", "downsample", ("factor",)),
    "spatial:mask": ("spatial", "mask", ("ratio", "mask_seed")),
}
_KIND = {(group, choice): kind for kind, (group, choice, _) in _SPECS.items()}


def _complete(settings: dict) -> dict:
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"settings has unknown key(s) {sorted(unknown)}; expected keys among {sorted(DEFAULTS)}")
    s = {**DEFAULTS, **settings}
    for group, allowed in (("temporal", TEMPORAL), ("spatial", SPATIAL)):
        if s[group] not in allowed:
            raise ValueError(f"{group} must be one of {allowed}, got {s[group]!r}")
    return s


def settings_to_specs(settings: dict) -> list[str]:
    """The operator specs for ``settings`` (missing keys take :data:`DEFAULTS`): temporal first, then spatial."""
    s = _complete(settings)
    specs = []
    for group in ("temporal", "spatial"):
        if s[group] != "none":
            kind = _KIND[group, s[group]]
            specs.append(":".join([kind, *(str(s[key]) for key in _SPECS[kind][2])]))
    return specs


def settings_from_specs(text) -> dict | None:
    """Settings for a ``"spec, spec"`` string, or None when it is missing, malformed, or not one optional
    temporal plus one optional spatial operator (what the widgets can show)."""
    if not isinstance(text, str):
        return None
    settings = {**DEFAULTS, "temporal": "none", "spatial": "none"}
    for spec in (s.strip() for s in text.split(",") if s.strip()):
        try:
            parse_op(spec)
        except (ValueError, TypeError):
            return None
        parts = [p.strip() for p in spec.split(":")]
        group, choice, keys = _SPECS[":".join(parts[:2]).lower()]
        if settings[group] != "none":
            return None
        settings[group] = choice
        for key, field in zip(keys, parts[2:]):
            settings[key] = type(DEFAULTS[key])(field)
    return settings if (settings["temporal"], settings["spatial"]) != ("none", "none") else None


def build_operator(settings: dict):
    """The operator ``spatial @ temporal`` of ``settings``, built by :func:`svimg.cli.opspec.parse_ops`.

    ValueError for an unknown key or choice, a bad value, or no degradation at all.
    """
    return parse_ops(settings_to_specs(settings))


def degrade(video, settings: dict, name: str) -> tuple:
    """``svimg.forward_op(video, build_operator(settings))`` as an image ``LayerDataTuple``.

    The layer is named ``"{name} degraded"`` (short enough for the layer list) and carries the
    provenance attrs plus the specs under ``svimg_op_spec``; a downsampled result gets scale f
    and translate (f - 1) / 2 in y and x so it overlays the full-resolution input.
    """
    s = _complete(settings)
    specs = settings_to_specs(s)
    op = parse_ops(specs)
    placement = {}
    if s["spatial"] == "downsample":
        f = s["factor"]
        placement = {"scale": (1, f, f), "translate": (0, (f - 1) / 2, (f - 1) / 2)}
    y = svimg.forward_op(video, op)
    spec = ", ".join(specs)
    return video_to_layer(y, name=f"{name} degraded", metadata={OP_SPEC_ATTR: spec}, **placement)
