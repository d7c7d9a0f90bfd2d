"""Physical pixel size and frame interval of TIFF files: read into coordinates, written back as resolution tags.

Read, in this order of preference (the first source that gives an axis wins):

- OME-XML (OME-TIFF): ``Pixels`` ``PhysicalSizeX/Y`` (unit ``PhysicalSizeX/YUnit``, default micrometre) and
  ``TimeIncrement`` (``TimeIncrementUnit``, default second);
- ImageJ: the resolution tags as pixels per ``unit`` (ImageJ's own metadata; ``micron``/``um`` ...) and
  ``finterval`` (``tunit``, default second);
- plain TIFF: the resolution tags when ResolutionUnit is CENTIMETER (inch resolutions are screen DPI, no
  physical size).

Each becomes an evenly spaced dimension coordinate ``step * index`` with ``attrs["units"]`` in UDUNITS words
(``micrometer``, ``second``), the names OME-NGFF axes use, so that OME-Zarr output gets the scale and the unit.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tiff_coords", "tiff_resolution", "unit_name"]

_UNITS = {  # common spellings -> (UDUNITS name, metres or seconds per unit)
    **dict.fromkeys(("um", "µm", "\u03bcm", "micron", "microns", "micrometer", "micrometre"), ("micrometer", 1e-6)),
    **dict.fromkeys(("nm", "nanometer", "nanometre"), ("nanometer", 1e-9)),
    **dict.fromkeys(("mm", "millimeter", "millimetre"), ("millimeter", 1e-3)),
    **dict.fromkeys(("cm", "centimeter", "centimetre"), ("centimeter", 1e-2)),
    **dict.fromkeys(("m", "meter", "metre"), ("meter", 1.0)),
    **dict.fromkeys(("s", "sec", "second", "seconds"), ("second", 1.0)),
    **dict.fromkeys(("ms", "msec", "millisecond", "milliseconds"), ("millisecond", 1e-3)),
    **dict.fromkeys(("min", "minute", "minutes"), ("minute", 60.0)),
    **dict.fromkeys(("h", "hr", "hour", "hours"), ("hour", 3600.0)),
}
_LENGTHS = {"micrometer", "nanometer", "millimeter", "centimeter", "meter"}


def unit_name(unit) -> str | None:
    """The UDUNITS name of a unit spelling (``"um"`` -> ``"micrometer"``), the spelling itself when unknown,
    None for no unit (ImageJ writes ``"pixel"`` or nothing)."""
    if not isinstance(unit, str) or unit.strip().lower() in ("", "pixel", "pixels", "none"):
        return None
    return _UNITS.get(unit.strip(), _UNITS.get(unit.strip().lower(), (unit.strip(), None)))[0]


def _positive(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _ome_steps(xml: str) -> dict:
    import xml.etree.ElementTree as ET

    pixels = next((e for e in ET.fromstring(xml).iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None:
        return {}
    steps = {}
    for dim, size, unit, default in (("x", "PhysicalSizeX", "PhysicalSizeXUnit", "µm"),
                                     ("y", "PhysicalSizeY", "PhysicalSizeYUnit", "µm"),
                                     ("t", "TimeIncrement", "TimeIncrementUnit", "s")):
        step = _positive(pixels.get(size))
        if step is not None:
            steps[dim] = (step, unit_name(pixels.get(unit, default)))
    return steps


def _resolution_steps(page, unit) -> dict:
    """Pixel size from the X/YResolution tags (pixels per ``unit``)."""
    steps = {}
    for dim, res in zip(("x", "y"), page.resolution):
        res = _positive(res)
        if res is not None and res != 1.0:
            steps[dim] = (1.0 / res, unit)
    return steps


def _tiff_steps(tif) -> dict:
    page = tif.pages.first
    if tif.is_ome and tif.ome_metadata:
        steps = _ome_steps(tif.ome_metadata)
        if steps:
            return steps
    if tif.is_imagej and tif.imagej_metadata:
        meta = tif.imagej_metadata
        steps = _resolution_steps(page, unit_name(meta.get("unit"))) if unit_name(meta.get("unit")) else {}
        interval = _positive(meta.get("finterval"))
        if interval is not None:
            steps["t"] = (interval, unit_name(meta.get("tunit", "s")) or "second")
        return steps
    if int(page.resolutionunit) == 3:  # CENTIMETER; INCH is screen DPI
        return {d: (step * 1e4, "micrometer") for d, (step, _) in _resolution_steps(page, "centimeter").items()}
    return {}


def tiff_coords(tif, dims: list, shape: tuple) -> dict:
    """{dim: ((dim,), step * arange(n), {"units": unit})} for the t/y/x axes whose physical spacing ``tif`` records
    (module docstring); ``dims`` and ``shape`` are the series' axes (svimg names) and shape."""
    coords = {}
    for dim, (step, unit) in _tiff_steps(tif).items():
        if dim in dims:
            n = shape[dims.index(dim)]
            coords[dim] = ((dim,), step * np.arange(n, dtype=np.float64), {"units": unit} if unit else {})
    return coords


def tiff_resolution(da) -> dict:
    """TiffWriter keywords (``resolution``, ``resolutionunit``) for ``da``'s evenly spaced y/x coordinates in a
    length unit: pixels per centimetre, what ImageJ, Fiji and tifffile read back as the pixel size; {} otherwise."""
    from ._ngff import regular_spacing

    per_cm = []
    for dim in ("x", "y"):
        coord = da.coords.get(dim)
        spacing = regular_spacing(coord.values) if coord is not None and coord.size > 1 else None
        unit = _UNITS.get(unit_name(coord.attrs.get("units")) or "", (None, None)) if coord is not None else None
        if spacing is None or unit[0] not in _LENGTHS:
            return {}
        per_cm.append(1e-2 / (spacing[1] * unit[1]))
    return {"resolution": tuple(per_cm), "resolutionunit": "CENTIMETER"}
