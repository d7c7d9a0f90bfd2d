"""Choose the kernel that applies a temporal matrix (torch, Cython or Triton) or a separable blur.

Every temporal operator (forward, adjoint, normal) is a T x T matrix M applied
to each pixel's time series: ``out[t, p] = sum_s M[t, s] x[s, p]``.  M is banded
(a PSF touches few frames), so the fast kernels take it in ELL form: for every
output frame the columns and weights of its non-zero entries.

Backends
--------
``torch``   dense ``M @ x`` in the input's precision (float32 accumulation for
            half types).  The ground truth the others are tested against.
``cython``  ``svimg._kernels._banded_cpu``: CPU float32/float64, stage tables
            from :func:`band_plan` (running sums where rows differ by few taps,
            a box kernel's normal operator as M then M^T), OpenMP over pixel blocks.
``triton``  ``svimg._kernels.triton_temporal``: CUDA tensors, or CPU tensors
            under ``TRITON_INTERPRET=1``; float16/bfloat16/float32/float64
            storage, float32 (float64) accumulation.  ``cg_engine`` gives CG
            its fused iterations (``svimg._kernels.triton_cg``).

Choice: ``SVIMG_BACKEND=torch|cython|triton`` forces one (a forced backend that
cannot run the input raises instead of silently falling back).  Otherwise the
candidates for the input are the compiled kernel of its device (Cython on the
CPU, Triton on CUDA) and torch; a tensor that needs autograd, a half type on
the CPU, or a missing extension leaves torch alone.  Between two candidates
:func:`svimg._timing.fastest` decides by timing both on the first call of each
problem class and logs why (see :mod:`svimg.ops`).  :func:`blur_apply` chooses
the same way for the separable Gaussian blur.
"""

from __future__ import annotations

import functools
import importlib
import os

import numpy as np
import torch
import torch.nn.functional as F

from . import _timing
from ._validate import take_finite_check

__all__ = ["BACKENDS", "available_backends", "backend_for", "band_matrix", "band_plan", "blur_apply", "cg_engine",
           "ell_form", "fused_cg_applies", "stage_table", "time_apply"]

BACKENDS = ("torch", "cython", "triton")


@functools.lru_cache(maxsize=None)
def _module(name: str):
    """Import a kernel module, or return None when it is not available."""
    try:
        if name == "cython":
            return importlib.import_module("svimg._kernels._banded_cpu")
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


def _candidates(x) -> list[str]:
    """The backends that can run ``x``, GPU kernel first (the Triton interpreter is never a candidate on the CPU)."""
    if x.device.type == "cuda":
        names = ("triton", "torch")
    else:
        names = ("cython", "torch")
    return [name for name in names if _supports(name, x)]


def _forced(x) -> str | None:
    forced = os.environ.get("SVIMG_BACKEND", "").strip().lower()
    if not forced:
        return None
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


def backend_for(x: torch.Tensor, M: np.ndarray | None = None, factors: tuple = ()) -> str:
    """The backend that ``time_apply(x, M, factors)`` uses: forced, the only one that runs ``x``, or the measured fastest.

    Without ``M`` (a question about ``x`` alone) a choice between several
    candidates is the one already measured for tensors like ``x``, else the
    first candidate (the compiled kernel of x's device).
    """
    forced = _forced(x)
    if forced:
        return forced
    names = _candidates(x)
    if len(names) == 1:
        return names[0]
    if M is None:
        return _timing.known_choice("time", x) or names[0]
    runners = {name: functools.partial(_apply_with, name, x, M, tuple(factors)) for name in names}
    return _timing.fastest("time", x, np.ascontiguousarray(M, dtype=np.float64).tobytes(), runners)


@functools.lru_cache(maxsize=128)
def _ell_cached(key: bytes, T: int) -> tuple[np.ndarray, np.ndarray]:
    M = np.frombuffer(key, dtype=np.float64).reshape(T, T)
    return _rows_to_ell(M, M != 0)


def _rows_to_ell(M: np.ndarray, nnz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    T = M.shape[0]
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


RESTART = 8  # consecutive recurrent rows at most: bounds how far a running sum's rounding can build up


def stage_table(M: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """One stage of the CPU kernel for M and its cost (taps per output voxel).

    Row t is either M[t] itself or, when that takes fewer taps, the row
    difference ``D[t] = M[t] - M[t-1]`` with ``recur[t] = 1``, so that
    ``(M x)[t] = (M x)[t-1] + D[t] x`` (exact in exact arithmetic: D holds exact
    zeros where the rows agree, as for a box kernel's interior).  A direct row
    comes at least every ``RESTART`` rows.
    """
    M = np.ascontiguousarray(M, dtype=np.float64)
    T = M.shape[0]
    rows, recur, run = M.copy(), np.zeros(T, dtype=np.uint8), 0
    for t in range(1, T):
        diff = M[t] - M[t - 1]
        run = run + 1 if run < RESTART and np.count_nonzero(diff) + 1 < np.count_nonzero(M[t]) else 0
        if run:
            rows[t], recur[t] = diff, 1
    cols, weights = _rows_to_ell(rows, rows != 0)
    recur.setflags(write=False)
    return (cols, weights, recur), float(np.count_nonzero(rows) + recur.sum()) / max(T, 1)


STAGE_OVERHEAD = 1.0  # taps per voxel an extra stage costs (one more sweep over the block in L2)


@functools.lru_cache(maxsize=128)
def _plan_cached(key: bytes, T: int, n_factors: int) -> tuple:
    mats = np.frombuffer(key, dtype=np.float64).reshape(n_factors + 1, T, T)
    one, one_cost = stage_table(mats[0])
    if n_factors < 2:
        return (one,)
    tables = [stage_table(factor) for factor in mats[1:]]
    split_cost = sum(cost for _, cost in tables) + STAGE_OVERHEAD * (n_factors - 1)
    return tuple(table for table, _ in tables) if split_cost < one_cost else (one,)


def band_plan(M: np.ndarray, factors: tuple = ()) -> tuple:
    """Stage tables for the CPU kernel: M in one stage, or ``factors`` (M = F_k ... F_1, F_1 listed first)
    one stage each when their taps add up to fewer (e.g. a box kernel's normal operator)."""
    mats = [np.ascontiguousarray(M, dtype=np.float64)] + [np.ascontiguousarray(F, dtype=np.float64) for F in factors]
    return _plan_cached(np.stack(mats).tobytes(), M.shape[0], len(factors))


def time_apply(x: torch.Tensor, M: np.ndarray, factors: tuple = ()) -> torch.Tensor:
    """Apply the T x T matrix ``M`` along axis 0 of ``x`` (shape (T, ...)); returns a new tensor.

    ``factors`` optionally lists matrices with ``M = F_k ... F_1`` (F_1 first),
    which the CPU kernel may apply one after the other when that is cheaper.
    """
    T = x.shape[0]
    if M.shape != (T, T):
        raise ValueError(f"temporal matrix of shape {M.shape} does not fit {T} frames")
    return _apply_with(backend_for(x, M, factors), x, M, factors)


def _apply_with(backend: str, x: torch.Tensor, M: np.ndarray, factors: tuple) -> torch.Tensor:
    T = x.shape[0]
    x2d = x.reshape(T, -1)
    if backend == "torch":
        work = x2d if x.dtype in (torch.float32, torch.float64) else x2d.float()
        out = torch.tensor(M, dtype=work.dtype, device=x.device) @ work  # a copy: M is a read-only cached array
        out = out.to(x.dtype)
    elif backend == "cython":
        stages, report = band_plan(M, factors), take_finite_check(x)
        out = _module("cython").stages_apply(x2d.detach().contiguous().numpy(), stages, report_finite=bool(report))
        if report:  # the kernel read every element of x: it answers the API's NaN/Inf check as well
            out, finite = out
            report(finite)
        out = torch.from_numpy(out)
    else:
        out = _module("triton").band_apply(x2d.contiguous(), *ell_form(M))
    return out.reshape(x.shape)


def band_matrix(taps: np.ndarray, n: int) -> np.ndarray:
    """The n x n matrix of a centred 1-D correlation with zero boundary: ``B[i, s] = taps[s - i + len(taps) // 2]``."""
    c = taps.size // 2
    B = np.zeros((n, n))
    for j, w in enumerate(taps):
        shift = j - c
        idx = np.arange(max(0, -shift), min(n, n - shift))
        B[idx, idx + shift] = w
    return B


def _blur_torch(x: torch.Tensor, taps: np.ndarray) -> torch.Tensor:
    """Two conv2d passes, (K, 1) along H and (1, K) along W, on (T*C, 1, H, W); float32 compute for half types."""
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    flat = work.reshape(-1, 1, *x.shape[-2:])
    g = torch.tensor(taps, dtype=work.dtype, device=x.device)  # a copy: taps is read-only
    c = taps.size // 2
    flat = F.conv2d(flat, g.view(1, 1, -1, 1), padding=(c, 0))
    flat = F.conv2d(flat, g.view(1, 1, 1, -1), padding=(0, c))
    return flat.reshape(x.shape).to(x.dtype)


@functools.lru_cache(maxsize=32)
def _blur_tables(taps_key: bytes, n: int) -> tuple[np.ndarray, np.ndarray]:
    return ell_form(band_matrix(np.frombuffer(taps_key), n))


def _blur_cython(x: torch.Tensor, taps: np.ndarray) -> torch.Tensor:
    cols, weights = _blur_tables(np.ascontiguousarray(taps, dtype=np.float64).tobytes(), x.shape[-2])
    stack = x.detach().reshape(-1, *x.shape[-2:]).contiguous().numpy()
    return torch.from_numpy(_module("cython").blur_apply(stack, cols, weights, taps)).reshape(x.shape)


def blur_apply(x: torch.Tensor, taps: np.ndarray) -> torch.Tensor:
    """Separable zero-boundary blur of every (H, W) frame of ``x`` with the symmetric 1-D kernel ``taps``
    along H and along W: ``y = B_H x B_W^T`` with ``B = band_matrix(taps, n)``.

    CPU float32/float64 tensors without autograd go to the Cython kernel or two
    torch conv2d passes, whichever measured faster (:mod:`svimg._timing`, timed on an eighth of the
    frames);
    anything else (CUDA, half types, autograd) to torch.  ``SVIMG_BACKEND=cython``
    or ``=torch`` forces one (``=triton`` runs the torch passes on the GPU).
    """
    forced = _forced(x)
    runners = _blur_runners(x, taps)
    if forced or not _supports("cython", x):
        return runners["cython" if forced == "cython" else "torch"]()
    tables = np.concatenate([np.asarray(taps, dtype=np.float64), [x.shape[-2], x.shape[-1]]]).tobytes()
    probe = x[: max(1, x.shape[0] // 8)] if x.ndim > 2 else x  # frame by frame: a few frames time it like all
    return runners[_timing.fastest("blur", x, tables, _blur_runners(probe, taps))]()


def _blur_runners(x: torch.Tensor, taps: np.ndarray) -> dict:
    return {"cython": functools.partial(_blur_cython, x, taps), "torch": functools.partial(_blur_torch, x, taps)}


def fused_cg_applies(b2d: torch.Tensor, x0_2d: torch.Tensor) -> bool:
    """Whether :func:`cg_engine` gives a fused engine: the backend for ``b2d`` is Triton and ``x0_2d``
    matches ``b2d`` in shape, dtype and device (otherwise CG runs the torch engine, which reaches the
    Cython/torch kernels through ``time_apply``)."""
    if backend_for(b2d) != "triton" or _module("triton_cg") is None:
        return False
    return not (x0_2d.shape != b2d.shape or x0_2d.dtype != b2d.dtype or x0_2d.device != b2d.device
                or _needs_autograd(x0_2d))


def cg_engine(M: np.ndarray, b2d: torch.Tensor, x0_2d: torch.Tensor):
    """Fused Triton CG state for ``H = M`` along time on (T, P) tensors, or None where it does not apply
    (:func:`fused_cg_applies`)."""
    if not fused_cg_applies(b2d, x0_2d):
        return None
    cols, weights = ell_form(M)
    return _module("triton_cg").FusedCG(cols, weights, b2d, x0_2d)
