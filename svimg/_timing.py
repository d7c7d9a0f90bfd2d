"""Choose between interchangeable kernels by timing them on the caller's own input.

The first call for a *problem class* (task, device, dtype, leading axis, size
class, thread count and the operator's own tables) runs every candidate on the
actual input (one warm-up and ``REPEATS`` timed calls each) and keeps the one
with the smallest median time; later calls of that class reuse the choice.
Every choice is logged on the ``svimg.dispatch`` logger at DEBUG level with
its reason (the measured medians), and :func:`choices` lists them all.
A candidate that raises while it is timed (a kernel that does not compile on this GPU, say) is
dropped for that class with one warning (:mod:`svimg._fallback`) and the others are timed.
A caller whose timing is costly (the prior's engines: seconds per frame size) passes a ``store``, a
JSON file that keeps its choices across processes; the caller names one file per machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from . import _fallback

__all__ = ["REPEATS", "choices", "fastest", "key", "known_choice"]

REPEATS = 3
log = logging.getLogger("svimg.dispatch")
_CHOICES: dict[tuple, tuple[str, str]] = {}


def key(task: str, x: torch.Tensor, tables: bytes | None) -> tuple:
    """The problem class of ``x``: sizes are grouped by powers of two of the voxels per leading index."""
    per_row = max(1, x.numel() // max(1, x.shape[0]))
    digest = None if tables is None else hashlib.blake2b(tables, digest_size=8).hexdigest()
    return (task, x.device.type, str(x.dtype).replace("torch.", ""), int(x.shape[0]), per_row.bit_length(),
            torch.get_num_threads(), digest)


def _median_seconds(run: Callable[[], object], device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    run()
    sync()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest(task: str, x: torch.Tensor, tables: bytes | None, runners: dict[str, Callable[[], object]],
            store: Path | None = None) -> str:
    """The name of the runner that was fastest for ``x``'s problem class (measured now if it is new).

    ``store``: a JSON file of earlier choices; a class found there is not measured again, a new one is added.
    """
    k = key(task, x, tables)
    if k not in _CHOICES and store is not None:
        _CHOICES.update(_stored(store, k, runners))
    if k not in _CHOICES:
        seconds = {}
        names = _fallback.skip_dropped(task, k, runners)
        for i, name in enumerate(names):
            try:
                with torch.no_grad():
                    seconds[name] = _median_seconds(runners[name], x.device)
            except Exception as err:  # noqa: BLE001 - any failure drops the candidate, see svimg._fallback
                if i == len(names) - 1 and not seconds:
                    raise  # nothing else works: the error is the answer
                _fallback.drop(task, k, name, err)
        best = min(seconds, key=seconds.get)
        measured = ", ".join(f"{name} {s * 1e3:.3g} ms" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        failed = "".join(f"; {name} dropped ({error})" for (_, where, name), error in _fallback.dropped(task).items()
                         if where == k)
        reason = (f"{task} on {k[1]} {k[2]} {tuple(x.shape)}, {k[5]} thread(s): {best} was fastest "
                  f"(median of {REPEATS}: {measured}{failed})")
        _CHOICES[k] = (best, reason)
        log.debug("svimg dispatch: %s", reason)
        if store is not None:
            _store(store, k)
    return _CHOICES[k][0]


def _read(store: Path) -> dict:
    try:
        kept = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again
    return kept if isinstance(kept, dict) else {}


def _stored(store: Path, k: tuple, runners) -> dict:
    """{k: (name, reason)} when ``store`` holds a choice for ``k`` among ``runners``, else {}."""
    entry = _read(store).get(repr(k))
    if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in runners):
        return {}
    log.debug("svimg dispatch: %s (kept in %s)", entry[1], store)
    return {k: (entry[0], f"{entry[1]}; measured by an earlier process, kept in {store}")}


def _store(store: Path, k: tuple) -> None:
    """Add the choice for ``k`` to ``store`` (written under a temporary name, then renamed); a failure only logs."""
    kept = _read(store)
    kept[repr(k)] = list(_CHOICES[k])
    tmp = store.with_name(f"{store.name}.{os.getpid()}.tmp")
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(kept, indent=1))
        os.replace(tmp, store)
    except OSError as err:
        log.debug("svimg dispatch: could not keep the choice in %s: %s", store, err)


def known_choice(task: str, x) -> str | None:
    """The latest choice for ``task`` on tensors of ``x``'s device and dtype at the current thread count, if any."""
    partial = (task, x.device.type, str(x.dtype).replace("torch.", ""), None, None, torch.get_num_threads(), None)
    for k, (name, _) in reversed(list(_CHOICES.items())):
        if all(p is None or p == q for p, q in zip(partial, k)):
            return name
    return None


def choices() -> dict[tuple, tuple[str, str]]:
    """Every choice made so far: problem-class key -> (backend, reason)."""
    return dict(_CHOICES)
