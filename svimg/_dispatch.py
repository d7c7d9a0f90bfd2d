"""Choose the kernel that applies a temporal matrix: torch, Cython or Triton.

Every temporal operator (forward, adjoint, normal) is a T x T matrix M applied
to each pixel's time series: ``out[t, p] = sum_s M[t, s] x[s, p]``.  M is banded
(a PSF touches few frames), so the fast kernels take it in ELL form: for every
output frame the columns and weights of its non-zero entries.

Backends
--------
``torch``   dense ``M @ x`` in the input's precision (float32 accumulation for
            half types).  The ground truth the others are tested against.
``cython``  ``svimg._kernels._temporal_cpu``: CPU float32/float64, OpenMP over pixels.
``triton``  ``svimg._kernels.triton_temporal``: CUDA tensors, or CPU tensors
            under ``TRITON_INTERPRET=1``; float16/bfloat16/float32/float64
            storage, float32 (float64) accumulation.  ``cg_engine`` gives CG
            its fused iterations (``svimg._kernels.triton_cg``).

By default CUDA tensors use Triton when it imports, CPU float32/float64 tensors
use Cython when the extension is built, anything else (and any tensor that
needs autograd) uses torch.  The
environment variable ``SVIMG_BACKEND=torch|cython|triton`` forces one; a forced
backend that cannot run the input raises instead of silently falling back.
"""

from __future__ import annotations

import functools
import importlib
import os

import numpy as np
import torch

__all__ = ["BACKENDS", "available_backends", "backend_for", "cg_engine", "ell_form", "time_apply"]

BACKENDS = ("torch", "cython", "triton")


@functools.lru_cache(maxsize=None)
def _module(name: str):
    """Import a kernel module, or return None when it is not available."""
    try:
        if name == "cython":
            return importlib.import_module("svimg._kernels._temporal_cpu")
        if name == "triton":
            return importlib.import_module("svimg._kernels.triton_temporal")
        if name == "triton_cg":
            return importlib.import_module("svimg._kernels.triton_cg")
    except ImportError:
        return None
    return None


def available_backends() -> list[str]:
    """The backends that import on this machine (torch always does)."""
    return ["torch"] + [name for name in ("cython", "triton") if _module(name) is not None]


def _interpreting() -> bool:
    """Whether the Triton kernels were built for the interpreter (TRITON_INTERPRET=1 when triton was imported)."""
    return bool(getattr(_module("triton"), "INTERPRETED", False))


def _needs_autograd(x: torch.Tensor) -> bool:
    """Only the torch backend records a graph; the fast kernels would silently cut it."""
    return x.requires_grad and torch.is_grad_enabled()


def _supports(name: str, x: torch.Tensor) -> bool:
    if name == "torch":
        return True
    if _module(name) is None or _needs_autograd(x):
        return False
    if name == "cython":
        return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if x.dtype not in _module("triton").DTYPES:
        return False
    return x.device.type == "cuda" or (x.device.type == "cpu" and _interpreting())


def backend_for(x: torch.Tensor) -> str:
    """The backend that ``time_apply`` will use for ``x``."""
    forced = os.environ.get("SVIMG_BACKEND", "").strip().lower()
    if forced:
        if forced not in BACKENDS:
            raise ValueError(f"SVIMG_BACKEND must be one of {BACKENDS}, got {forced!r}")
        if not _supports(forced, x):
            if _module(forced) is None:
                why = "it is not installed"
            elif _needs_autograd(x):
                why = "the input requires grad and only the torch backend supports autograd"
            else:
                why = f"it does not run {x.dtype} tensors on {x.device.type}" + (
                    " (CPU tensors need TRITON_INTERPRET=1 set before triton is imported)" if forced == "triton" else ""
                )
            raise RuntimeError(f"SVIMG_BACKEND={forced} was requested but {why}")
        return forced
    if x.device.type == "cuda" and _supports("triton", x):
        return "triton"
    if _supports("cython", x):
        return "cython"
    return "torch"


@functools.lru_cache(maxsize=128)
def _ell_cached(key: bytes, T: int) -> tuple[np.ndarray, np.ndarray]:
    M = np.frombuffer(key, dtype=np.float64).reshape(T, T)
    nnz = M != 0
    width = max(1, int(nnz.sum(axis=1).max()))
    cols = np.zeros((T, width), dtype=np.int32)
    weights = np.zeros((T, width), dtype=np.float64)
    for t in range(T):
        idx = np.flatnonzero(nnz[t])
        cols[t, : idx.size] = idx
        weights[t, : idx.size] = M[t, idx]
    cols.setflags(write=False)
    weights.setflags(write=False)
    return cols, weights


def ell_form(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ELL form of a square matrix: ``cols`` (T, W) int32 and ``weights`` (T, W) float64,
    padded with weight 0, so that ``(M @ x)[t] = sum_w weights[t, w] * x[cols[t, w]]``."""
    M = np.ascontiguousarray(M, dtype=np.float64)
    return _ell_cached(M.tobytes(), M.shape[0])


def time_apply(x: torch.Tensor, M: np.ndarray) -> torch.Tensor:
    """Apply the T x T matrix ``M`` along axis 0 of ``x`` (shape (T, ...)); returns a new tensor."""
    T = x.shape[0]
    if M.shape != (T, T):
        raise ValueError(f"temporal matrix of shape {M.shape} does not fit {T} frames")
    x2d = x.reshape(T, -1)
    backend = backend_for(x)
    if backend == "torch":
        work = x2d if x.dtype in (torch.float32, torch.float64) else x2d.float()
        out = torch.tensor(M, dtype=work.dtype, device=x.device) @ work  # a copy: M is a read-only cached array
        out = out.to(x.dtype)
    else:
        cols, weights = ell_form(M)
        out = _run_kernel(backend, x2d, cols, weights)
    return out.reshape(x.shape)


def _run_kernel(backend: str, x2d: torch.Tensor, cols: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """Call a fast kernel: Cython works on numpy views, Triton on tensors."""
    if backend == "cython":
        return torch.from_numpy(_module("cython").band_apply(x2d.detach().contiguous().numpy(), cols, weights))
    return _module("triton").band_apply(x2d.contiguous(), cols, weights)


def cg_engine(M: np.ndarray, b2d: torch.Tensor, x0_2d: torch.Tensor):
    """Fused Triton CG state for ``H = M`` along time on (T, P) tensors, or None where it does not apply.

    It applies when the backend for ``b2d`` is Triton and ``x0_2d`` matches
    ``b2d`` in shape, dtype and device; otherwise CG runs the torch engine
    (which reaches the Cython/torch kernels through ``time_apply``).
    """
    if backend_for(b2d) != "triton" or _module("triton_cg") is None:
        return None
    if x0_2d.shape != b2d.shape or x0_2d.dtype != b2d.dtype or x0_2d.device != b2d.device or _needs_autograd(x0_2d):
        return None
    cols, weights = ell_form(M)
    return _module("triton_cg").FusedCG(cols, weights, b2d, x0_2d)
