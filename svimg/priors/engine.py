"""Run a prior's network through the fastest engine on this machine: eager torch or ONNX Runtime.

``NetworkEngine(net, sha256)(x, t)`` equals ``net(x, t)`` up to float rounding.  Engines:

``torch``        the network itself (always available; the only one with autograd, and on CUDA).
``onnxruntime``  the network exported to ONNX for the input's (H, W) (batch axis dynamic) and run by
                 ONNX Runtime's CPU provider (``pip install svimg[onnx]``).  Graphs are cached on disk
                 under :func:`cache_dir` ``/onnx/<sha256 of the weights>/<H>x<W>.onnx``: the export
                 runs once per weights file and frame size.
``onnxruntime-frames``  the same graph, the batch split into one part per thread, each part run by a
                 single-threaded ONNX Runtime call, all at once (ONNX Runtime releases the GIL).  A
                 network on large frames gains less from a second thread inside one call than from a
                 second frame: at 272 x 640 on two threads 338 ms per frame against 380 (measured,
                 benchmarks/README.md); at 64 x 64 nothing (15 ms either way).

Choice: ``SVIMG_PRIOR_ENGINE=torch|onnxruntime|onnxruntime-frames`` forces one.  Otherwise a CPU call
without autograd (and outside a torch dispatch mode) on weights with a known sha256 has the
candidates, and :func:`svimg._timing.fastest` times them on as many frames of the first call of each
frame size and thread count as there are threads (up to the batch; ``onnxruntime-frames`` needs two)
and keeps the fastest for every batch, logging why on the ``svimg.dispatch`` logger
(:func:`svimg._timing.choices` lists the reasons).  The choice is kept beside the graphs, in
:meth:`NetworkEngine.choices_path` (one file per CPU model and versions of torch and ONNX Runtime), so
that later processes on this machine skip the timing (about 11 s at 272 x 640 on two threads; delete the file to
measure again).  Anything else runs torch.  An engine that is missing or fails (an export or session
error) is dropped for that class with one ``RuntimeWarning`` and torch runs instead
(:meth:`NetworkEngine.dropped`).
ONNX Runtime uses torch's thread count (``torch.set_num_threads``; the machine's cores by default).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import platform
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .. import _timing

__all__ = ["ENGINES", "NetworkEngine", "cache_dir", "available_engines"]

ENGINES = ("torch", "onnxruntime", "onnxruntime-frames")
OPSET = 17


def cache_dir() -> Path:
    """``$SVIMG_CACHE_DIR``, else ``$XDG_CACHE_HOME/svimg``, else ``~/.cache/svimg``."""
    if os.environ.get("SVIMG_CACHE_DIR"):
        return Path(os.environ["SVIMG_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "svimg"


@functools.lru_cache(maxsize=None)
def _onnxruntime():
    try:
        return importlib.import_module("onnxruntime")
    except ImportError:
        return None


def available_engines() -> list[str]:
    """The engines that import on this machine (torch always does)."""
    return ["torch"] + (["onnxruntime", "onnxruntime-frames"] if _onnxruntime() is not None else [])


@functools.lru_cache(maxsize=None)
def _machine_id() -> str:
    """A short digest of what the engines' speeds depend on besides the input: CPU model, torch, ONNX Runtime."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    ort = _onnxruntime()
    described = f"{cpu}; torch {torch.__version__}; onnxruntime {getattr(ort, '__version__', None)}"
    return hashlib.blake2b(described.encode(), digest_size=6).hexdigest()


def _forced() -> str | None:
    forced = os.environ.get("SVIMG_PRIOR_ENGINE", "").strip().lower()
    if not forced:
        return None
    if forced not in ENGINES:
        raise ValueError(f"SVIMG_PRIOR_ENGINE must be one of {ENGINES}, got {forced!r}")
    if forced not in available_engines():
        raise RuntimeError(f"SVIMG_PRIOR_ENGINE={forced} was requested but it is not installed "
                           f"(pip install 'svimg[onnx]')")
    return forced


class NetworkEngine:
    """``net(x, t)`` through the engine chosen for the input (module docstring); ``sha256`` names the weights."""

    def __init__(self, net: nn.Module, sha256: str | None):
        self.net, self.sha256 = net, sha256
        self._sessions: dict[tuple, object] = {}
        self._dropped: dict[tuple, str] = {}

    def dropped(self) -> dict[tuple, str]:
        """(H, W) -> the error that made a frame size fall back to torch."""
        return dict(self._dropped)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        forced = _forced()
        if forced == "torch" or not self._can_export(x):
            return self.net(x, t)
        size = tuple(x.shape[-2:])
        if size in self._dropped:
            return self.net(x, t)
        runners = {"torch": self.net, "onnxruntime": self._run_onnx, "onnxruntime-frames": self._run_onnx_frames}
        try:
            if forced is not None:
                return runners[forced](x, t)
            # timed on one frame per thread: the choice holds for every batch of this frame size (a cost per
            # frame), and costs a few frames' calls instead of eight calls of the whole batch
            k = min(torch.get_num_threads(), x.shape[0])
            few, t_few = x[:k], t[:k]
            timers = {name: functools.partial(run, few, t_few) for name, run in runners.items()
                      if k > 1 or name != "onnxruntime-frames"}
            choice = _timing.fastest("prior", few, self.sha256.encode(), timers, store=self.choices_path())
            return runners[choice](x, t)
        except Exception as err:  # noqa: BLE001 - any engine failure falls back to the torch network
            if forced:
                raise
            reason = (str(err).strip().splitlines() or [""])[0][:200]  # the exporter's messages can hold tensors
            self._dropped[size] = f"{type(err).__name__}: {reason}"
            warnings.warn(f"svimg: the onnxruntime engine failed for {size[0]}x{size[1]} frames "
                          f"({self._dropped[size]}); the torch network runs instead", RuntimeWarning, stacklevel=3)
            return self.net(x, t)

    def _can_export(self, x: torch.Tensor) -> bool:
        """CPU float32 without autograd, weights with a sha256 (the cache key), ONNX Runtime installed, and no
        dispatch mode active (one that watches torch's operations, e.g. a memory count, must see the torch network)."""
        return (x.device.type == "cpu" and x.dtype == torch.float32 and self.sha256 is not None
                and not (torch.is_grad_enabled() and x.requires_grad) and _onnxruntime() is not None
                and _get_current_dispatch_mode() is None)

    def graph_path(self, size: tuple) -> Path:
        return cache_dir() / "onnx" / self.sha256 / f"{size[0]}x{size[1]}.onnx"

    def choices_path(self) -> Path:
        """Where this machine's engine choices for these weights are kept (module docstring)."""
        return cache_dir() / "onnx" / self.sha256 / f"choices-{_machine_id()}.json"

    def _session(self, x: torch.Tensor, t: torch.Tensor, threads: int | None = None):
        """The ONNX Runtime session for x's frame size with ``threads`` threads (default torch's)."""
        size, threads = tuple(x.shape[-2:]), threads or torch.get_num_threads()
        if (size, threads) not in self._sessions:
            path = self.graph_path(size)
            if not path.is_file():
                self._export(x, t, path)
            ort = _onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            self._sessions[(size, threads)] = ort.InferenceSession(str(path), options,
                                                                   providers=["CPUExecutionProvider"])
        return self._sessions[(size, threads)]

    def _export(self, x: torch.Tensor, t: torch.Tensor, path: Path) -> None:
        """Export for x's (H, W) with a dynamic batch axis; written to a temporary name, then renamed."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are about shape constants: intended
            torch.onnx.export(self.net, (x[:1], t[:1]), str(tmp), input_names=["x", "t"], output_names=["eps"],
                              dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "eps": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)

    def _run_onnx(self, x: torch.Tensor, t: torch.Tensor, session=None) -> torch.Tensor:
        session = session or self._session(x, t)
        feed = {"x": x.detach().contiguous().numpy(), "t": t.detach().to(torch.int64).contiguous().numpy()}
        return torch.from_numpy(session.run(None, feed)[0])

    def _run_onnx_frames(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``onnxruntime-frames``: one part of the batch per thread, each in a single-threaded call, at once."""
        parts = min(torch.get_num_threads(), x.shape[0])
        session = self._session(x, t, threads=1)
        with ThreadPoolExecutor(parts) as pool:
            outs = list(pool.map(self._run_onnx, x.tensor_split(parts), t.tensor_split(parts), [session] * parts))
        return torch.cat(outs)
