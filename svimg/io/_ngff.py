"""OME-NGFF image metadata: write version 0.5 (zarr v3), read 0.4 and 0.5.

An NGFF image group holds ``multiscales`` (under the ``ome`` attribute in 0.5,
at the top level in 0.4): ``axes`` (name, type time|channel|space, optional
unit) and ``datasets``, each an array path with a scale (and optional
translation) transformation.  svimg writes one level, path ``"0"``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["image_metadata", "read_image_metadata", "regular_spacing"]

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def regular_spacing(values) -> tuple[float, float] | None:
    """(origin, step) when ``values`` are evenly spaced real numbers, else None."""
    v = np.asarray(values)
    if v.dtype.kind not in "iuf" or v.size < 1:
        return None
    v = v.astype(np.float64)
    if v.size == 1:
        return float(v[0]), 1.0
    step = v[1] - v[0]
    if step <= 0 or not np.allclose(np.diff(v), step, rtol=1e-9, atol=0):
        return None
    return float(v[0]), float(step)


def image_metadata(da, path: str = "0") -> dict:
    """The ``ome`` attribute (NGFF 0.5) of a group holding ``da`` at ``path``.

    The scale/translation of each t/y/x axis comes from its coordinate when that
    is evenly spaced (so viewers show physical spacing); otherwise 1 and 0.
    Units come from a coordinate's ``units`` attribute when present.
    """
    axes, scale, translation = [], [], []
    for dim in da.dims:
        axis = {"name": dim, "type": _AXIS_TYPES[dim]}
        origin, step = 0.0, 1.0
        if dim != "c" and dim in da.coords:
            spacing = regular_spacing(da.coords[dim].values)
            if spacing is not None:
                origin, step = spacing
            unit = da.coords[dim].attrs.get("units")
            if isinstance(unit, str):
                axis["unit"] = unit
        axes.append(axis)
        scale.append(step)
        translation.append(origin)
    transforms = [{"type": "scale", "scale": scale}]
    if any(translation):
        transforms.append({"type": "translation", "translation": translation})
    multiscale = {"axes": axes, "datasets": [{"path": path, "coordinateTransformations": transforms}]}
    if da.name is not None:
        multiscale["name"] = str(da.name)
    return {"version": "0.5", "multiscales": [multiscale]}


def read_image_metadata(attrs: dict) -> dict | None:
    """From a group's attributes: {"path", "axes" (names), "types", "scale", "translation", "units", "name"} of the
    first (full-resolution) level, or None when the group is not an NGFF image."""
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if not multiscales:
        return None
    ms = multiscales[0]
    axes = ms.get("axes")
    if not axes or not ms.get("datasets"):
        raise ValueError("OME-NGFF multiscales metadata without axes or datasets")
    # NGFF 0.3 listed axes as bare names; 0.4+ as {"name", "type"} objects.
    names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
    types = [a.get("type") if isinstance(a, dict) else None for a in axes]
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes]
    level = ms["datasets"][0]
    # physical = scale * index + translation; the level's transformations apply first, then the global ones.
    scale, translation = np.ones(len(names)), np.zeros(len(names))
    for tr in level.get("coordinateTransformations", []) + ms.get("coordinateTransformations", []):
        if tr.get("type") == "scale" and "scale" in tr:
            s = np.asarray(tr["scale"], dtype=np.float64)
            scale, translation = scale * s, translation * s
        elif tr.get("type") == "translation" and "translation" in tr:
            translation = translation + np.asarray(tr["translation"], dtype=np.float64)
    return {"path": level["path"], "axes": names, "types": types, "scale": scale.tolist(),
            "translation": translation.tolist(), "units": units, "name": ms.get("name")}
