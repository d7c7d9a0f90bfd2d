"""Degradation operators written as short text specs (the command line's ``--op``; reusable by any front end).

Grammar (one operator per spec; fields separated by ``:``)::

    temporal:uniform:W[:BOUNDARY]        TemporalPSF.uniform(W, boundary)      box PSF over W frames
    temporal:gaussian:SIGMA[:BOUNDARY]   TemporalPSF.gaussian(SIGMA, boundary) Gaussian PSF along t
    spatial:blur[:SIZE:SIGMA]            GaussianBlur(SIZE=13, SIGMA=2.0)
    spatial:sr:F                         Downsample(F)                         F x F average pooling
    spatial:mask:RATIO[:SEED]            RandomMask(RATIO, SEED=0)             keep a fraction RATIO of pixels

BOUNDARY is one of :data:`svimg.ops.BOUNDARIES` (``valid`` by default,
:data:`svimg.ops.temporal.DEFAULT_BOUNDARY`: a clip cut from a longer recording,
N frames in give N - support + 1 out; ``circular`` is the paper's).  Several specs
are applied in the order given (the first one first), so
``["temporal:uniform:7", "spatial:sr:4"]`` is ``Downsample(4) @ TemporalPSF(7)``:
temporal first, as in the paper.  (A temporal and a spatial operator commute;
the order matters between spatial ones.)
"""

from __future__ import annotations

import inspect
from typing import Sequence

from ..ops import BOUNDARIES, Downsample, GaussianBlur, LinearOperator, RandomMask, TemporalPSF
from ..ops.temporal import DEFAULT_BOUNDARY

__all__ = ["parse_op", "parse_ops", "split_specs", "GRAMMAR", "OP_SPEC_ATTR", "DEFAULT_BOUNDARY"]

DEFAULT_BOUNDARY = inspect.signature(TemporalPSF).parameters["boundary"].default  # the operator's, not a copy
OP_SPEC_ATTR = "svimg_op_spec"  # attr recording a degradation as specs (written by `svimg degrade` and napari's Degrade)

GRAMMAR = ("temporal:uniform:W[:BOUNDARY] | temporal:gaussian:SIGMA[:BOUNDARY] | spatial:blur[:SIZE:SIGMA] | "
           f"spatial:sr:F | spatial:mask:RATIO[:SEED]; BOUNDARY {'|'.join(BOUNDARIES)} (default {DEFAULT_BOUNDARY})")


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} must be an integer, got {text!r}") from None


def _float(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {text!r}") from None


def _boundary(fields: list[str]) -> str:
    boundary = fields[0] if fields else DEFAULT_BOUNDARY
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    return boundary


def _build(kind: str, fields: list[str]) -> LinearOperator:
    arity = {  # kind -> (required fields, optional fields)
        "temporal:uniform": (1, 1), "temporal:gaussian": (1, 1), "spatial:blur": (0, 2),
        "spatial:sr": (1, 0), "spatial:mask": (1, 1),
    }
    if kind not in arity:
        raise ValueError(f"unknown operator {kind!r}")
    need, extra = arity[kind]
    if not need <= len(fields) <= need + extra or (kind == "spatial:blur" and len(fields) == 1):
        raise ValueError(f"{kind} takes {'no' if need == 0 else need} required and up to {extra} optional field(s), "
                         f"got {len(fields)}")
    if kind == "temporal:uniform":
        return TemporalPSF.uniform(_int(fields[0], "W (frames)"), boundary=_boundary(fields[1:]))
    if kind == "temporal:gaussian":
        return TemporalPSF.gaussian(_float(fields[0], "SIGMA (frames)"), boundary=_boundary(fields[1:]))
    if kind == "spatial:blur":
        if not fields:
            return GaussianBlur()
        return GaussianBlur(_int(fields[0], "SIZE"), _float(fields[1], "SIGMA"))
    if kind == "spatial:sr":
        return Downsample(_int(fields[0], "F (factor)"))
    return RandomMask(_float(fields[0], "RATIO"), seed=_int(fields[1], "SEED") if len(fields) > 1 else 0)


def parse_op(spec: str) -> LinearOperator:
    """The operator written as ``spec`` (module docstring); ValueError quoting the spec and the grammar otherwise."""
    if not isinstance(spec, str):
        raise TypeError(f"an operator spec must be a string like 'temporal:uniform:7', got {type(spec).__name__}")
    parts = [p.strip() for p in spec.strip().split(":")]
    try:
        return _build(":".join(parts[:2]).lower(), parts[2:])
    except (ValueError, TypeError) as err:
        raise ValueError(f"bad operator spec {spec!r}: {err}; expected {GRAMMAR}") from None


def split_specs(specs: str | Sequence[str]) -> list[str]:
    """One spec per entry: a string, or each string of a list, split at its commas (blanks dropped, stripped).
    Entries that are not strings are kept for :func:`parse_op` to refuse."""
    out = []
    for spec in [specs] if isinstance(specs, str) else specs:
        out += [part.strip() for part in spec.split(",") if part.strip()] if isinstance(spec, str) else [spec]
    return out


def parse_ops(specs: str | Sequence[str]) -> LinearOperator:
    """Compose specs applied in the given order: ``[s1, s2, s3]`` -> ``op3 @ op2 @ op1``.

    ``specs`` is a list of specs or one string of specs separated by commas
    (``"temporal:uniform:7, spatial:sr:4"``); a list's entries may hold commas too.
    """
    specs = split_specs(specs)
    if not specs:
        raise ValueError(f"no operator given; expected at least one spec: {GRAMMAR}")
    op = parse_op(specs[0])
    for spec in specs[1:]:
        op = parse_op(spec) @ op
    return op
