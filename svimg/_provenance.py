"""Provenance attributes attached to every xarray result."""

from __future__ import annotations

import datetime
import json

__all__ = ["provenance", "with_record"]


def provenance(operation: str, op=None, **params) -> dict:
    """Attrs recording how a result was made: package version, operation, operator, parameters and a CF ``history`` line.

    The history line reads ``{time} svimg {version} {operation}(op=..., key=value, ...)``.  Values are kept
    JSON/zarr friendly (numbers, strings, bools, None); anything else is stored as its ``repr``.
    """
    from . import __version__

    def plain(v):
        return v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)

    clean = {k: plain(v) for k, v in params.items()}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    arguments = ([f"op={op!r}"] if op is not None else []) + [f"{k}={v!r}" for k, v in clean.items()]
    attrs = {
        "svimg_version": __version__,
        "svimg_operation": operation,
        "svimg_parameters": json.dumps(clean, sort_keys=True),
        "history": f"{stamp} svimg {__version__} {operation}({', '.join(arguments)})",
    }
    if op is not None:
        attrs["svimg_operator"] = repr(op)
    return attrs


def with_record(attrs: dict, record: dict) -> dict:
    """``attrs`` updated by a new ``record`` (:func:`provenance`), its CF ``history`` line appended to the
    ``history`` already in ``attrs`` (one line per step, oldest first, as CF asks).  A decoder's ``codec``
    is dropped: the result is no longer the frames it decoded."""
    merged = {k: v for k, v in {**attrs, **record}.items() if k != "codec"}  # no longer the decoded frames
    previous, new = attrs.get("history"), record.get("history")
    if previous and new:
        merged["history"] = f"{previous}\n{new}"
    return merged
