"""Degrade instead of crashing: a backend that raises is dropped for its problem class, the next one runs.

A *kind* names what is being chosen ("time" for the temporal kernels, "cg" for CG engines, a prior
engine, ...); a *key* names the problem class within it (any hashable, e.g. :func:`svimg._timing.key`).
:func:`first_working` runs the candidates of ``(kind, key)`` in their order of preference and returns
the first result that did not raise.  A candidate that raised is dropped for that ``(kind, key)``:
it is announced by one ``RuntimeWarning`` naming it and its error, and never tried there again.
When every candidate raises, the last error propagates (nothing is hidden when nothing works).
:func:`skip_dropped` filters a candidate list for callers that run the candidates themselves
(timing them, say) and :func:`drop` records a failure they caught.

Only ``Exception`` is caught: KeyboardInterrupt and SystemExit pass through.  Use it where the
candidates compute the same thing (a compiled kernel and its torch reference), so that a result
does not depend on which one ran.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

__all__ = ["drop", "dropped", "first_working", "reset", "skip_dropped"]

R = TypeVar("R")
_DROPPED: dict[tuple[str, Hashable, str], str] = {}
_LOCK = threading.Lock()


def drop(kind: str, key: Hashable, name: str, error: BaseException) -> None:
    """Record that candidate ``name`` raised ``error`` for ``(kind, key)``; warn once about it."""
    with _LOCK:
        if (kind, key, name) in _DROPPED:
            return
        _DROPPED[(kind, key, name)] = f"{type(error).__name__}: {error}"
    warnings.warn(f"svimg: the {kind} backend {name!r} failed and is dropped for this problem class "
                  f"({type(error).__name__}: {error}); the next candidate runs instead", RuntimeWarning, stacklevel=3)


def skip_dropped(kind: str, key: Hashable, names: Iterable[str]) -> list[str]:
    """``names`` without the candidates dropped for ``(kind, key)``, order kept."""
    return [name for name in names if (kind, key, name) not in _DROPPED]


def first_working(kind: str, key: Hashable, candidates: dict[str, Callable[[], R]]) -> tuple[str, R]:
    """(name, result) of the first candidate of ``(kind, key)`` (dict order) whose call did not raise.

    Candidates already dropped there are skipped; one that raises now is dropped (:func:`drop`).
    Raises the last candidate's error if all of them fail, ``ValueError`` if none is left to try.
    """
    names = skip_dropped(kind, key, candidates)
    if not names:
        raise ValueError(f"no {kind} candidate left to try: {sorted(candidates)} were all dropped "
                         f"({'; '.join(dropped(kind).values())})")
    for name in names[:-1]:
        try:
            return name, candidates[name]()
        except Exception as err:  # noqa: BLE001 - the point: any failure of a candidate means "try the next"
            drop(kind, key, name, err)
    return names[-1], candidates[names[-1]]()


def dropped(kind: str | None = None) -> dict[tuple[str, Hashable, str], str]:
    """Every drop so far (of ``kind`` only, if given): (kind, key, name) -> "ErrorType: message"."""
    return {k: v for k, v in _DROPPED.items() if kind is None or k[0] == kind}


def reset() -> None:
    """Forget every drop (each candidate gets another chance; for tests and long sessions after a driver fix)."""
    with _LOCK:
        _DROPPED.clear()
