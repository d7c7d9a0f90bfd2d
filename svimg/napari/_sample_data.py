"""napari sample data: a degraded video clip (with its ground truth) and the synthetic cells time-lapse."""

from __future__ import annotations

from ._layers import video_to_layer
from ._operator import degrade

__all__ = ["degraded_clip", "cells"]

#: The sample degradation: the paper's uniform temporal PSF of width 7, circular boundary.
CLIP_SETTINGS = {"temporal": "uniform", "width": 7, "boundary": "circular", "spatial": "none"}


def degraded_clip() -> list[tuple]:
    """16 frames of the held-out "carphone" clip (128 x 128) and the same frames blurred by
    ``TemporalPSF(7, boundary="circular")`` (the paper's setting, named: 16 frames in, 16 out).

    The ground truth comes first, as the reference for the Compare widget.
    """
    from svimg import data

    clean = data.clip("carphone", frames=16, size=128)
    return [video_to_layer(clean, name="carphone"), degrade(clean, CLIP_SETTINGS, "carphone")]


def cells() -> list[tuple]:
    """The synthetic fluorescence time-lapse of :func:`svimg.data.cells` as a (t, y, x) layer."""
    from svimg import data

    return [video_to_layer(data.cells(), name="cells")]
