"""Conjugate gradients on a whole volume at once.

Solves ``H x = b`` for a symmetric positive (semi-)definite H given as a function.
Inner products run over every axis, time included: the temporal PSF couples
frames, so splitting the video into independent frames (as image toolkits do
along the batch axis) would solve a different problem.

Two engines run the same recurrence.  The torch engine calls H and is the
reference.  When H is the normal system of a temporal PSF (possibly scaled,
possibly gamma-regularised), H is one banded T x T matrix along time; if the
Triton backend runs ``b`` (:func:`svimg._dispatch.cg_engine`), fused kernels
do each iteration in three launches (:mod:`svimg._kernels.triton_cg`).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
import torch

from .. import _dispatch, _fallback, _timing
from ..ops.base import Scaled
from ..ops.temporal import TemporalPSF
from .differences import laplacian_matrix, temporal_laplacian

__all__ = ["conjugate_gradient", "normal_system"]


_DOT_BLOCK = 1 << 20  # elements per block of _dot: its temporary (4-8 MB) stays under malloc's mmap threshold,
# so each block reuses the same heap memory; whole-volume temporaries were fresh pages every call (on a
# 250-frame 272 x 640 video, 64 MB blocks made the inner products 12x slower, mostly the kernel's page faults)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> summed over all elements, accumulated in float64 (BLAS for contiguous float64 tensors, else
    :data:`_DOT_BLOCK` elements at a time)."""
    if a.is_contiguous() and b.is_contiguous():
        a, b = a.view(-1), b.view(-1)
        if a.dtype == b.dtype == torch.float64:
            return torch.dot(a, b)
    if a.ndim == 0 or a.numel() <= _DOT_BLOCK:
        return torch.sum(a * b, dtype=torch.float64)
    step = max(1, _DOT_BLOCK * a.shape[0] // a.numel())
    return sum(torch.sum(a[i:i + step] * b[i:i + step], dtype=torch.float64) for i in range(0, a.shape[0], step))


class _NormalSystem:
    """H v = G v, or v + gamma G v, with G = A^T A + smooth L (L the temporal Laplacian,
    :mod:`svimg.solvers.differences`): callable like a function, and able to say
    when it is a single T x T matrix along time (see :meth:`time_matrix`)."""

    def __init__(self, op, gamma: float | None, smooth=0.0):
        self.op, self.gamma, self.smooth = op, gamma, smooth

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        n = self.op.normal(v)  # a new tensor (operators never return their input), updated in place below
        if isinstance(self.smooth, torch.Tensor) or self.smooth:
            temporal_laplacian(v, self.smooth, out=n)
        return n if self.gamma is None else n.mul_(self.gamma).add_(v)

    def time_matrix(self, T: int) -> np.ndarray | None:
        """H as a T x T float64 matrix along time when A is a (scaled) TemporalPSF, else None."""
        op, scale = self.op, 1.0
        while isinstance(op, Scaled):
            op, scale = op.op, scale * op.scale
        if not isinstance(op, TemporalPSF) or isinstance(self.smooth, torch.Tensor):
            return None
        N = scale**2 * op._normal_matrix(T) + (self.smooth * laplacian_matrix(T) if self.smooth else 0)
        return N if self.gamma is None else np.eye(T) + self.gamma * N


def normal_system(op, y: torch.Tensor, x0: torch.Tensor | None, gamma: float | None,
                  aty: torch.Tensor | None = None, smooth=0.0):
    """The system CG solves for a data step.

    Without ``gamma``: ``A^T A x = A^T y``.  With ``gamma`` (DDS's regularised
    form for noisy data): ``(I + gamma A^T A) x = x0 + gamma A^T y``.  ``smooth`` = lam > 0
    adds a quadratic smoothness along time to the data term, ``A^T A -> A^T A + lam D_t^T D_t``
    (``(I + gamma (A^T A + lam D_t^T D_t)) x = x0 + gamma A^T y``); lam is a number or a
    tensor of one weight per pixel, broadcast over (T, C, H, W).
    ``aty``: A^T y when the caller already has it (a sampler reuses it every step).
    Returns ``(H, b)`` with H a callable ``H(v)``.
    """
    aty = op.adjoint(y) if aty is None else aty
    if gamma is None:
        return _NormalSystem(op, None, smooth), aty
    g = float(gamma)
    return _NormalSystem(op, g, smooth), x0 + g * aty


class _TorchCG:
    """The reference engine: H is any function, inner products in float64 (see conjugate_gradient)."""

    def __init__(self, H, b: torch.Tensor, x0: torch.Tensor):
        self.H, self.b, self.x = H, b, x0.clone()

    def start(self) -> float:
        self.r = self.b - self.H(self.x)
        self.p = self.r.clone()
        self.rs = _dot(self.r, self.r)
        return float(self.rs)

    def step(self) -> tuple[float, float]:
        Hp = self.H(self.p)
        curvature = _dot(self.p, Hp)
        if curvature <= 0:
            return float(curvature), float(self.rs)
        alpha = float(self.rs / curvature)
        self.r.sub_(Hp, alpha=alpha)  # one pass each, no temporaries: x, r, p and Hp are alive at a time
        del Hp
        self.x.add_(self.p, alpha=alpha)
        rs_new = _dot(self.r, self.r)
        torch.add(self.r, self.p, alpha=float(rs_new / self.rs), out=self.p)  # p = r + beta p
        self.rs = rs_new
        return float(curvature), float(rs_new)


class _FusedCG:
    """Adapter from the Triton engine's (T, P) view to b's shape."""

    def __init__(self, engine, shape):
        self.engine, self.x = engine, engine.x.view(shape)

    def start(self) -> float:
        return self.engine.start()

    def step(self) -> tuple[float, float]:
        return self.engine.step()


_FUSED_TRIED: set = set()  # problem classes whose fused engine ran one start() and step() on a scratch copy


def _started_engine(H, b: torch.Tensor, x0: torch.Tensor):
    """(engine, <r0, r0>): the fused engine when H is one matrix along time and the Triton backend runs b,
    else torch.  The first time per problem class a scratch fused engine runs one iteration (every kernel
    of it compiles); a fused engine that raises there, or while built or started, is dropped for that
    class with one warning and torch runs (:mod:`svimg._fallback`; b and x0 are never modified)."""
    def fused(M, b2d, x2d, key):
        if key not in _FUSED_TRIED:
            scratch = _dispatch.cg_engine(M, b2d, x2d)
            scratch.start()
            scratch.step()
            _FUSED_TRIED.add(key)
        engine = _FusedCG(_dispatch.cg_engine(M, b2d, x2d), b.shape)
        return engine, engine.start()

    def reference():
        engine = _TorchCG(H, b, x0)
        return engine, engine.start()

    candidates, key = {}, None
    time_matrix = getattr(H, "time_matrix", None)
    if time_matrix is not None and b.ndim >= 1 and b.numel() and x0.shape == b.shape:
        M = time_matrix(b.shape[0])
        b2d, x2d = b.reshape(b.shape[0], -1), x0.reshape(b.shape[0], -1)
        if M is not None and _dispatch.fused_cg_applies(b2d, x2d):
            key = _timing.key("cg", b2d, np.ascontiguousarray(M, dtype=np.float64).tobytes())
            candidates["triton"] = functools.partial(fused, M, b2d, x2d, key)
    candidates["torch"] = reference
    return _fallback.first_working("cg", key, candidates)[1]


def conjugate_gradient(
    H: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor,
    n_iter: int,
    tol: float = 1e-5,
    callback: Callable[[int, torch.Tensor, float], None] | None = None,
    rtol: float = 0.0,
) -> tuple[torch.Tensor, list[float]]:
    """Run at most ``n_iter`` CG iterations on H x = b from ``x0`` (not modified).

    The recurrence::

        r0 = b - H x0, p0 = r0
        alpha_k = <r_k, r_k> / <p_k, H p_k>
        x_{k+1} = x_k + alpha_k p_k,  r_{k+1} = r_k - alpha_k H p_k
        p_{k+1} = r_{k+1} + (<r_{k+1}, r_{k+1}> / <r_k, r_k>) p_k

    stops once ||r|| < max(``tol``, ``rtol`` ||r_0||) (also when the residual or the curvature
    <p, H p> is exactly zero).  ``callback(k, x_k, ||r_k||)`` runs after each
    iteration.  Returns the iterate and the residual norms ||r_0||, ||r_1||, ...

    H from :func:`normal_system` for a (scaled) TemporalPSF runs fused Triton
    kernels when the Triton backend handles ``b`` (same results up to float
    rounding); any other H runs the torch reference.
    """
    engine, rs = _started_engine(H, b, x0)
    history = [math.sqrt(rs)]
    stop = max(tol, rtol * history[0])
    for k in range(1, n_iter + 1):
        if history[-1] < stop or rs == 0:
            break
        curvature, rs = engine.step()
        if curvature <= 0:
            break
        history.append(math.sqrt(rs))
        if callback is not None:
            callback(k, engine.x, history[-1])
    return engine.x, history
