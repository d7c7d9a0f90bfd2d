"""Many videos, many machines: restore a folder or a list of clips as Dask tasks, one task per clip.

``restore_many(inputs, out_dir, op)`` submits :func:`restore_clip` for every
input to a Dask distributed cluster (a ``LocalCluster`` by default, any
scheduler address such as ``"tcp://host:8786"``, or an existing ``Client``) and
returns one report entry per clip::

    {"input": ..., "output": ..., "status": "done" | "skipped" | "failed", "error": None | "...", "seconds": ...}

* Finished outputs are never recomputed: an output that exists and is complete
  (:func:`svimg.sampling.windows.store_is_complete`) is reported as
  ``"skipped"`` before anything is submitted; an unfinished windowed store is
  resumed where it stopped.
* Every output is written atomically (:func:`svimg.io.save`) or, for windowed
  runs, by the resumable :func:`~svimg.sampling.windows.sample_windowed`, so an
  interrupted or failed task never leaves an output that looks finished.
* A failing task is retried ``retries`` times by the scheduler; a clip that
  still fails is reported with its error and does not stop the others.
* Each worker process loads a prior spec once (:func:`cached_prior`, keyed by
  the spec string); a prior object is sent to each worker once (scattered).

``scheduler="sync"`` runs the same tasks one after the other in this process,
without Dask (the reference the distributed results are tested against).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
import time
from pathlib import Path

from ._validate import check_positive_int
from .ops.base import LinearOperator

__all__ = ["restore_many", "restore_clip", "collect_inputs", "output_path", "cached_prior", "is_batch",
           "recorded_op", "restore_command"]

_PRIORS: dict = {}
_PRIORS_LOCK = threading.Lock()


def cached_prior(prior):
    """``prior`` itself, or for a spec string (``svimg.priors.load``: "bundled", "adm:PATH", ...) the prior
    loaded once per process and kept for every later task (thread-safe)."""
    if not isinstance(prior, str):
        return prior
    with _PRIORS_LOCK:
        if prior not in _PRIORS:
            from . import priors

            _PRIORS[prior] = priors.load(prior)
        return _PRIORS[prior]


def _is_folder_of_clips(path: Path) -> bool:
    return path.is_dir() and path.suffix.lower() != ".zarr" and not (path / "zarr.json").exists() \
        and not (path / ".zgroup").exists() and not (path / ".zarray").exists()


def is_batch(inputs) -> bool:
    """True for several inputs or for one folder of clips (not a zarr store): what ``svimg restore`` hands to
    :func:`restore_many`."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    return len(inputs) > 1 or _is_folder_of_clips(Path(inputs[0]).expanduser())


def collect_inputs(inputs) -> list[Path]:
    """The clips to restore: a folder gives every entry svimg.io can read (by name, sorted); a path or a
    sequence of paths is taken as given (each must exist)."""
    from .io._paths import file_format

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise TypeError(f"inputs must be a folder, a path or a non-empty list of paths, got {inputs!r}")
    paths = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"inputs must hold paths, got {type(item).__name__}")
        path = Path(item).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"input {str(path)!r} does not exist")
        if _is_folder_of_clips(path):
            found = []
            for entry in sorted(path.iterdir()):
                try:
                    file_format(entry, reading=True)
                except ValueError:
                    continue
                found.append(entry)
            if not found:
                raise ValueError(f"folder {str(path)!r} holds no video, TIFF, zarr or .npy/.npz input")
            paths += found
        else:
            paths.append(path)
    return paths


def output_path(in_path, out_dir, suffix: str = ".zarr") -> Path:
    """``out_dir / (name of in_path without its suffix + suffix)``: clip.mp4 -> out_dir/clip.zarr."""
    return Path(out_dir).expanduser() / (Path(in_path).stem + suffix)


def restore_clip(in_path, out_path, op, prior="bundled", *, window: int | None = None, overlap: int | None = None,
                 overwrite: bool = False, **sample_kwargs) -> dict:
    """Restore one clip (one Dask task): read ``in_path``, run the sampler, write ``out_path``.

    ``op`` is a LinearOperator, or a callable ``op(y) -> LinearOperator`` given the
    clip as a lazy DataArray (e.g. to read an operator recorded in its attrs).
    ``noise_std`` None or not given: :func:`noise_std_for` (the level ``svimg degrade`` recorded).
    With ``window`` the clip is restored by :func:`svimg.sampling.windows.sample_windowed`
    straight into ``out_path`` (a ``.zarr`` store, resumable); otherwise by
    :func:`svimg.sample` in one pass and saved atomically.  Returns
    ``{"input", "output", "status": "done" | "skipped", "error": None, "seconds"}``.
    """
    from . import io
    from .sampling import sample
    from .sampling.windows import sample_windowed, store_is_complete

    started = time.perf_counter()
    report = {"input": str(in_path), "output": str(out_path), "status": "done", "error": None}
    out_path = Path(out_path)
    if out_path.exists() and not overwrite and store_is_complete(out_path):
        return {**report, "status": "skipped", "seconds": 0.0}
    y = io.load(in_path)
    operator = op if isinstance(op, LinearOperator) else op(y)
    sample_kwargs["noise_std"] = noise_std_for(y, sample_kwargs.get("noise_std"), sample_kwargs.get("gamma"))
    prior = cached_prior(prior)
    if window is not None:
        sample_windowed(y, operator, prior, window=window, overlap=overlap, out=out_path, overwrite=overwrite,
                        progress=False, **sample_kwargs)
    else:
        io.save(sample(y, operator, prior, progress=False, **sample_kwargs), out_path, overwrite=overwrite)
    return {**report, "seconds": time.perf_counter() - started}


def _client(scheduler, n_workers: int, threads_per_worker: int, processes: bool):
    """(client, cluster or None): a LocalCluster for None, a Client for an address, or the Client given."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        return scheduler, None
    if scheduler is None:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                               dashboard_address=None)
        return Client(cluster), cluster
    if isinstance(scheduler, str):
        return Client(scheduler), None
    raise TypeError(f"scheduler must be None (LocalCluster), 'sync', an address such as 'tcp://host:8786' "
                    f"or a distributed.Client, got {scheduler!r}")


def restore_many(inputs, out_dir, op, prior="bundled", *, scheduler=None, n_workers: int = 2,
                 threads_per_worker: int = 1, processes: bool = False, retries: int = 2, window: int | None = None,
                 overlap: int | None = None, overwrite: bool = False, progress: bool = True,
                 **sample_kwargs) -> list[dict]:
    """Restore every clip of ``inputs`` into ``out_dir`` (one ``.zarr`` per clip), one Dask task per clip.

    Parameters
    ----------
    inputs : folder, path or list of paths
        See :func:`collect_inputs`.  Outputs are named after the inputs
        (:func:`output_path`); two inputs with the same name raise.
    out_dir : path
        Created when missing.
    op : LinearOperator or callable(y) -> LinearOperator
        The degradation of every clip (see :func:`restore_clip`).
    prior : spec string or prior object
        Loaded once per worker (:func:`cached_prior`).
    scheduler : None, "sync", address or distributed.Client
        None starts a ``LocalCluster(n_workers, threads_per_worker, processes)``
        for this call; "sync" runs the tasks here one by one without Dask.
    retries : int
        Extra attempts for a failing clip.
    window, overlap, overwrite, **sample_kwargs
        Passed to :func:`restore_clip` (``seed``, ``nfe``, ... reach :func:`svimg.sample`).
    progress : bool
        A progress bar over clips.

    Returns
    -------
    list of dict, one per input in input order (module docstring).
    """
    from tqdm.auto import tqdm

    from .sampling.windows import store_is_complete

    retries = check_positive_int(retries, "retries", minimum=0)
    n_workers = check_positive_int(n_workers, "n_workers")
    threads_per_worker = check_positive_int(threads_per_worker, "threads_per_worker")
    paths = collect_inputs(inputs)
    out_dir = Path(out_dir).expanduser()
    outputs = [output_path(p, out_dir) for p in paths]
    clashes = sorted({str(o) for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise ValueError(f"several inputs would be written to the same output: {', '.join(clashes)}; rename them")
    out_dir.mkdir(parents=True, exist_ok=True)
    kwargs = dict(window=window, overlap=overlap, overwrite=overwrite, **sample_kwargs)

    reports = {}
    todo = []
    for i, (src, dst) in enumerate(zip(paths, outputs)):
        if dst.exists() and not overwrite and store_is_complete(dst):
            reports[i] = {"input": str(src), "output": str(dst), "status": "skipped", "error": None, "seconds": 0.0}
        else:
            todo.append(i)

    with tqdm(total=len(paths), initial=len(reports), desc="svimg clips", unit="clip", disable=not progress) as bar:
        if scheduler == "sync":
            for i in todo:
                reports[i] = _run_with_retries(paths[i], outputs[i], op, prior, retries, kwargs)
                bar.update(1)
        elif todo:
            reports.update(_run_on_cluster(todo, paths, outputs, op, prior, retries, kwargs, bar,
                                           _client(scheduler, n_workers, threads_per_worker, processes)))
    return [reports[i] for i in range(len(paths))]


def _failed(src, dst, err: BaseException) -> dict:
    return {"input": str(src), "output": str(dst), "status": "failed", "error": f"{type(err).__name__}: {err}",
            "seconds": None}


def _run_with_retries(src, dst, op, prior, retries: int, kwargs: dict) -> dict:
    for attempt in range(retries + 1):
        try:
            return restore_clip(src, dst, op, prior, **kwargs)
        except Exception as err:  # reported per clip, like a task that failed on the cluster
            if attempt == retries:
                return _failed(src, dst, err)


def _run_on_cluster(todo, paths, outputs, op, prior, retries: int, kwargs: dict, bar, client_and_cluster) -> dict:
    from distributed import as_completed

    client, cluster = client_and_cluster
    try:
        shared = prior if isinstance(prior, str) else client.scatter(prior, broadcast=True)
        task = functools.partial(restore_clip, **kwargs)
        futures = {
            client.submit(task, paths[i], outputs[i], op, shared, retries=retries, pure=False,
                          key=f"svimg-restore-{i}-{paths[i].name}"): i
            for i in todo
        }
        reports = {}
        for future in as_completed(futures):
            i = futures[future]
            if future.status == "error":
                reports[i] = _failed(paths[i], outputs[i], future.exception())
            else:
                reports[i] = future.result()
            bar.update(1)
        return reports
    finally:
        if cluster is not None:
            client.close()
            cluster.close()


def recorded_op(y):
    """The degradation ``svimg degrade`` recorded in a clip (its ``svimg_op_spec`` attribute), as an operator."""
    from .cli.opspec import OP_SPEC_ATTR
    from .cli.opspec import parse_ops

    spec = str(y.attrs.get(OP_SPEC_ATTR, "")).strip()
    if not spec:
        raise ValueError("the clip records no degradation operator (no svimg_op_spec attribute); "
                         "give it with --op SPEC")
    return parse_ops(spec)


def recorded_noise_std(y) -> float | None:
    """The noise level ``svimg degrade`` added to a clip (in its provenance attrs), or None when it records none."""
    if y.attrs.get("svimg_operation") != "degrade":
        return None
    noise = json.loads(y.attrs.get("svimg_parameters", "{}")).get("noise")
    return float(noise) if isinstance(noise, (int, float)) and not isinstance(noise, bool) else None


def noise_std_for(y, noise_std=None, gamma=None):
    """The ``noise_std`` a front end passes to :func:`svimg.sample` for clip ``y`` (None: the user gave none).

    As given; else None when ``gamma`` weights the data step; else the level ``svimg degrade``
    recorded in y (:func:`recorded_noise_std`; 0 is noise-free); else :func:`svimg.sample`'s default.
    """
    from .sampling.dds import sample

    if noise_std is not None:
        return noise_std
    if gamma is not None:
        return None
    recorded = recorded_noise_std(y)
    return recorded if recorded is not None else inspect.signature(sample).parameters["noise_std"].default


def restore_command(inputs, output, op_specs=None, *, method: str = "dds", scheduler=None, workers: int = 2,
                    window: int | None = None, frames=None, overwrite: bool = False, quiet: bool = False,
                    prior="bundled", **sample_kwargs) -> int:
    """``svimg restore`` for several inputs or a folder (:func:`restore_many`, one line per clip on stdout), or
    for one input with ``--window`` (:func:`~svimg.sampling.windows.sample_windowed` into the ``.zarr`` OUT).

    ``op_specs``: operator specs (``--op``), or None to use the operator each clip
    records (:func:`recorded_op`).  Returns the exit status: 0, or 1 when a clip failed.
    """
    from .cli.opspec import parse_ops

    if method != "dds":
        raise ValueError(f"several inputs and --window run the diffusion sampler only (--method dds), "
                         f"got --method {method}")
    if frames is not None:
        raise ValueError("--frames applies to one input restored in one pass; drop it for several inputs or --window")
    op = parse_ops(op_specs) if op_specs else recorded_op
    if not is_batch(inputs):
        from . import io
        from .sampling.windows import sample_windowed

        (source,) = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
        y = io.load(source)
        sample_kwargs["noise_std"] = noise_std_for(y, sample_kwargs.get("noise_std"), sample_kwargs.get("gamma"))
        sample_windowed(y, op if op_specs else recorded_op(y), prior, window=window, out=output, overwrite=overwrite,
                        progress=not quiet, **sample_kwargs)
        return 0
    report = restore_many(inputs, output, op, prior, scheduler=scheduler, n_workers=workers, window=window,
                          overwrite=overwrite, progress=not quiet, **sample_kwargs)
    for entry in report:
        detail = entry["error"] if entry["status"] == "failed" else f"{entry['seconds']:.1f} s"
        print(f"{entry['status']:8s} {entry['input']} -> {entry['output']} ({detail})")
    return int(any(entry["status"] == "failed" for entry in report))
