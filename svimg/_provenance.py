"""Provenance attributes attached to every xarray result."""

from __future__ import annotations

import datetime
import json

__all__ = ["provenance"]


def provenance(operation: str, op=None, **params) -> dict:
    """Attrs recording how a result was made: package version, operation, operator, parameters and a CF ``history`` line.

    Values are kept JSON/zarr friendly (numbers, strings, bools, None); anything else is stored as its ``repr``.
    """
    from . import __version__

    def plain(v):
        return v if isinstance(v, (int, float, str, bool)) or v is None else repr(v)

    clean = {k: plain(v) for k, v in params.items()}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs = {
        "svimg_version": __version__,
        "svimg_operation": operation,
        "svimg_parameters": json.dumps(clean, sort_keys=True),
        "history": f"{stamp} svimg {__version__} {operation}({', '.join(f'{k}={v!r}' for k, v in clean.items())})",
    }
    if op is not None:
        attrs["svimg_operator"] = repr(op)
    return attrs
