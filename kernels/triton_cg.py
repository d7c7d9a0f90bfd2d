"""Fused conjugate-gradient iterations for a system that acts along time only.

When H is one banded T x T matrix along time (A^T A of a temporal PSF,
possibly scaled, or I + gamma A^T A), a CG iteration on a (T, P) volume is
three launches and one 2 x float64 read-back::

    1. band kernel (DOT):  Hp = H p,  block shares of <p, Hp>
    2. _update_kernel:     alpha = rs / <p, Hp>;  x += alpha p;  r -= alpha Hp;
                           block shares of <r, r>          (skipped if <p, Hp> <= 0)
    3. _direction_kernel:  beta = <r, r> / rs;  p = r + beta p

Dot products: every program writes its block's share (float32 products of the
stored values, summed in float64) to its own slot; the next kernel's programs
each sum all slots with the same fixed reduction tree.  No atomics, so the
result does not depend on scheduling and runs are bit-for-bit reproducible.
Both global reductions sit at a kernel boundary, which is why x/r and p are
updated in two kernels: computing <r_new, r_new> by the recurrence
``rs - 2 alpha <r, Hp> + alpha^2 <Hp, Hp>`` instead would allow one update
kernel but loses all accuracy once the residual has fallen by ~1e4 in float32.

The scalars live on the device: rs and <p, Hp> of iteration k go to row
``k % 2`` of a (2, 2) float64 buffer, so a launch never overwrites a value
another program of the same launch still reads.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .triton_temporal import acc_dtype, check_operand, device_tables, launch_band, on_device, tiling

__all__ = ["FusedCG"]


@triton.jit
def _sum_partials(ptr, G, G_BLOCK: tl.constexpr):
    """Sum of the G float64 block shares at ptr, in one fixed order (the same in every program)."""
    idx = tl.arange(0, G_BLOCK)
    return tl.sum(tl.load(ptr + idx, mask=idx < G, other=0.0), axis=0)


@triton.jit
def _update_kernel(x_ptr, r_ptr, p_ptr, hp_ptr, pq_parts_ptr, rr_parts_ptr, old_ptr, new_ptr, T, P, FRAMES, G,
                   BLOCK_P: tl.constexpr, G_BLOCK: tl.constexpr, ACC: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_t = tl.program_id(1)
    pq = _sum_partials(pq_parts_ptr, G, G_BLOCK)
    alpha = (tl.load(old_ptr) / pq).to(ACC)
    offs = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    live = offs < tl.where(pq <= 0, 0, P)  # no positive curvature: CG stops, x and r stay as they are
    t0 = pid_t * FRAMES
    rr = tl.zeros([BLOCK_P], dtype=tl.float64)
    for i in range(0, tl.minimum(FRAMES, T - t0)):
        idx = (t0 + i).to(tl.int64) * P + offs
        p = tl.load(p_ptr + idx, mask=live, other=0.0).to(ACC)
        hp = tl.load(hp_ptr + idx, mask=live, other=0.0).to(ACC)
        x = tl.load(x_ptr + idx, mask=live, other=0.0).to(ACC)
        r = tl.load(r_ptr + idx, mask=live, other=0.0).to(ACC)
        r_new = (r - alpha * hp).to(r_ptr.dtype.element_ty)
        tl.store(x_ptr + idx, (x + alpha * p).to(x_ptr.dtype.element_ty), mask=live)
        tl.store(r_ptr + idx, r_new, mask=live)
        rr += (r_new.to(ACC) * r_new.to(ACC)).to(tl.float64)
    tl.store(rr_parts_ptr + pid_t * tl.num_programs(0) + pid_p, tl.sum(rr, axis=0))
    if (pid_p == 0) & (pid_t == 0):
        tl.store(new_ptr + 1, pq)


@triton.jit
def _direction_kernel(r_ptr, p_ptr, rr_parts_ptr, old_ptr, new_ptr, T, P, FRAMES, G,
                      BLOCK_P: tl.constexpr, G_BLOCK: tl.constexpr, ACC: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_t = tl.program_id(1)
    rs_new = _sum_partials(rr_parts_ptr, G, G_BLOCK)
    beta = (rs_new / tl.load(old_ptr)).to(ACC)
    offs = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    in_range = offs < P
    t0 = pid_t * FRAMES
    for i in range(0, tl.minimum(FRAMES, T - t0)):
        idx = (t0 + i).to(tl.int64) * P + offs
        r = tl.load(r_ptr + idx, mask=in_range, other=0.0).to(ACC)
        p = tl.load(p_ptr + idx, mask=in_range, other=0.0).to(ACC)
        tl.store(p_ptr + idx, (r + beta * p).to(p_ptr.dtype.element_ty), mask=in_range)
    if (pid_p == 0) & (pid_t == 0):
        tl.store(new_ptr, rs_new)


class FusedCG:
    """CG state for H x = b on (T, P) volumes, H = the T x T matrix given by ELL tables.

    The same recurrence as :func:`svimg.solvers.cg.conjugate_gradient`, which
    drives it: ``start()`` forms r0 = b - H x0, p0 = r0 and returns <r0, r0>;
    each ``step()`` runs one iteration (three launches) and returns
    ``(<p, Hp>, <r_new, r_new>)`` as floats.  When ``<p, Hp> <= 0`` the step
    leaves x unchanged and the caller must stop.  ``x`` is the live iterate
    (``x0`` is copied, never modified).  ``block_p``/``frames`` override the
    tiling (:func:`svimg._kernels.triton_temporal.tiling`).
    """

    def __init__(self, cols, weights, b: torch.Tensor, x0: torch.Tensor, *, block_p: int | None = None,
                 frames: int | None = None):
        check_operand(b, "b")
        check_operand(x0, "x0")
        if x0.shape != b.shape or x0.dtype != b.dtype or x0.device != b.device:
            raise ValueError(
                f"x0 ({tuple(x0.shape)}, {x0.dtype}, {x0.device}) must match b "
                f"({tuple(b.shape)}, {b.dtype}, {b.device})"
            )
        T, P = b.shape
        self.b = b.contiguous()
        self.x = x0.clone(memory_format=torch.contiguous_format)
        self.cols, self.weights = device_tables(cols, weights, T, b.device, b.dtype)
        self.tiles = tiling(T, P, b.device, block_p, frames, b.element_size())
        n = self.tiles.n_programs
        self._pq_parts = torch.empty(n, dtype=torch.float64, device=b.device)
        self._rr_parts = torch.empty(n, dtype=torch.float64, device=b.device)
        self._scalars = torch.zeros(2, 2, dtype=torch.float64, device=b.device)  # row k % 2: (rs_k, <p, Hp>_k)
        self._hp = torch.empty_like(self.b)
        self.r = self.p = None
        self.k = 0

    def _matvec(self, v: torch.Tensor, dots: torch.Tensor | None = None) -> torch.Tensor:
        launch_band(v, self.cols, self.weights, self._hp, self.tiles, dots)
        return self._hp

    def start(self) -> float:
        """Residual r0 = b - H x0 and direction p0 = r0; returns <r0, r0> (float64)."""
        self.r = self.b - self._matvec(self.x)
        self.p = self.r.clone()
        rs = torch.sum(self.r * self.r, dtype=torch.float64)
        self._scalars[0, 0] = rs
        self.k = 0
        return float(rs)

    def step(self) -> tuple[float, float]:
        """One CG iteration in three launches; returns (<p, Hp>, <r_new, r_new>)."""
        if self.r is None:
            raise RuntimeError("FusedCG.step() called before start()")
        self.k += 1
        old, new = self._scalars[(self.k - 1) % 2], self._scalars[self.k % 2]
        t, grid = self.tiles, self.tiles.grid
        hp = self._matvec(self.p, self._pq_parts)
        meta = dict(BLOCK_P=t.block_p, G_BLOCK=triton.next_power_of_2(t.n_programs), ACC=acc_dtype(self.b.dtype),
                    num_warps=t.num_warps)
        with on_device(self.b.device):
            _update_kernel[grid](self.x, self.r, self.p, hp, self._pq_parts, self._rr_parts, old, new,
                                 t.T, t.P, t.frames, t.n_programs, **meta)
            _direction_kernel[grid](self.r, self.p, self._rr_parts, old, new, t.T, t.P, t.frames, t.n_programs,
                                    **meta)
        rs_new, curvature = new.tolist()
        return curvature, rs_new
