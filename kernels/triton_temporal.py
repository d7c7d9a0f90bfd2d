"""Triton kernel: apply a banded T x T matrix along time, tiled over pixels.

``out[t, p] = sum_k weights[t, k] * x[cols[t, k], p]`` for a (T, P) volume with
the matrix in ELL form (:func:`svimg._dispatch.ell_form`).  Forward M, adjoint
M^T and the normal operator M^T M are the same kernel with different tables,
so the normal operator is one launch that never stores the intermediate M x.

Layout: one program owns ``BLOCK_P`` consecutive pixels of ``FRAMES``
consecutive output frames.  For each of its frames it walks the W taps, each
a contiguous (coalesced) row segment of x, and accumulates in float32
(float64 for float64 volumes); the rows a frame reads are mostly the rows
its neighbour frame read, so they come from cache.  Padding taps (weight 0)
are masked off and cost no memory traffic.  With ``DOT`` the program also
returns its block's share of ``<x, out>`` (see :mod:`svimg._kernels.triton_cg`).

The kernels run on CUDA tensors, or on CPU tensors through Triton's
interpreter when ``TRITON_INTERPRET=1`` was set before triton was imported
(``INTERPRETED`` records which).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import torch
import triton
import triton.language as tl

__all__ = ["DTYPES", "INTERPRETED", "MAX_PARTIALS", "Tiling", "band_apply", "device_tables", "tiling", "warps_for"]

#: Storage dtypes the kernels read and write (accumulation is float32, float64 for float64).
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

#: Most programs (hence block partial sums) one launch may use: every CG program reduces all of them.
MAX_PARTIALS = 2048

_BLOCKS = (1024, 512, 256, 128)  # candidate pixel tiles on a GPU, largest first
_INTERPRETER_BLOCK = 4096  # the interpreter runs programs one by one: few, wide tiles are fastest


@triton.jit
def _band_kernel(x_ptr, cols_ptr, w_ptr, out_ptr, dot_ptr, T, P, FRAMES,
                 W: tl.constexpr, BLOCK_P: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_t = tl.program_id(1)
    offs = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    in_range = offs < P
    t0 = pid_t * FRAMES
    dots = tl.zeros([BLOCK_P], dtype=tl.float64)
    for i in range(0, tl.minimum(FRAMES, T - t0)):
        t = t0 + i
        acc = tl.zeros([BLOCK_P], dtype=ACC)
        for k in tl.static_range(W):
            col = tl.load(cols_ptr + t * W + k)
            w = tl.load(w_ptr + t * W + k)
            # A scalar condition cannot join a vector mask in the interpreter: fold it into the bound.
            live = offs < tl.where(w != 0, P, 0)
            v = tl.load(x_ptr + col.to(tl.int64) * P + offs, mask=live, other=0.0)
            acc += w * v.to(ACC)
        y = acc.to(out_ptr.dtype.element_ty)
        row = t.to(tl.int64) * P
        tl.store(out_ptr + row + offs, y, mask=in_range)
        if DOT:
            xt = tl.load(x_ptr + row + offs, mask=in_range, other=0.0)
            dots += (xt.to(ACC) * y.to(ACC)).to(tl.float64)
    if DOT:
        tl.store(dot_ptr + pid_t * tl.num_programs(0) + pid_p, tl.sum(dots, axis=0))


def _interpreted() -> bool:
    """Whether ``@triton.jit`` built interpreter functions (TRITON_INTERPRET=1 at import)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_band_kernel, InterpretedFunction)


#: True when the kernels run through Triton's interpreter (CPU tensors), False when they compile for CUDA.
INTERPRETED = _interpreted()


@dataclass(frozen=True)
class Tiling:
    """How a (T, P) volume is cut into programs: ``block_p`` pixels x ``frames`` frames each."""

    T: int
    P: int
    block_p: int
    frames: int
    num_warps: int

    @property
    def grid(self) -> tuple[int, int]:
        """(pixel tiles, frame chunks); program (i, j) writes its partial sum at ``j * grid[0] + i``."""
        return triton.cdiv(self.P, self.block_p), triton.cdiv(self.T, self.frames)

    @property
    def n_programs(self) -> int:
        return self.grid[0] * self.grid[1]


def _is_pow2(n) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 and (n & (n - 1)) == 0


def warps_for(block_p: int, itemsize: int) -> int:
    """Warps for a ``block_p``-pixel row: one 16-byte vector per thread (1 to 8 warps)."""
    return max(1, min(8, block_p * itemsize // (32 * 16)))


@functools.lru_cache(maxsize=256)
def tiling(T: int, P: int, device: torch.device, block_p: int | None = None, frames: int | None = None,
           itemsize: int = 4) -> Tiling:
    """Choose the tiles for a (T, P) volume on ``device`` (the choice never depends on timings,
    so results, block partial sums included, are reproducible).

    On a GPU: the widest pixel tile in 1024..128 that still gives at least
    4 programs per SM, then frames split into chunks only if the pixel tiles
    alone are too few; one tile per program otherwise keeps every frame's
    taps in cache.  Under the interpreter: as few programs as possible.
    Warps per program: enough for one 16-byte vector per thread per row
    (``itemsize`` bytes per element).  ``block_p`` (a power of two) and
    ``frames`` override the choice (tests use them to reach partial tiles).
    At most :data:`MAX_PARTIALS` programs.  Cached: the sampler asks for the same shapes every step.
    """
    if block_p is not None and not _is_pow2(block_p):
        raise ValueError(f"block_p must be a power of two, got {block_p!r}")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1):
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    if device.type == "cuda":
        target = 4 * torch.cuda.get_device_properties(device).multi_processor_count
        candidates = _BLOCKS
    else:
        target, candidates = 1, (_INTERPRETER_BLOCK,)
    if block_p is None:
        block_p = next((b for b in candidates if triton.cdiv(P, b) >= target), candidates[-1])
        block_p = max(16, min(block_p, triton.next_power_of_2(P)))
        while triton.cdiv(P, block_p) > MAX_PARTIALS:
            block_p *= 2
    n_tiles = triton.cdiv(P, block_p)
    if frames is None:
        chunks = min(T, max(1, triton.cdiv(target, n_tiles)), max(1, MAX_PARTIALS // n_tiles))
        frames = triton.cdiv(T, chunks)
    chosen = Tiling(T=T, P=P, block_p=int(block_p), frames=int(frames), num_warps=warps_for(block_p, itemsize))
    if chosen.n_programs > MAX_PARTIALS:
        raise ValueError(
            f"block_p={block_p}, frames={frames} cut a ({T}, {P}) volume into {chosen.n_programs} programs; "
            f"at most {MAX_PARTIALS} are allowed"
        )
    return chosen


def acc_dtype(dtype: torch.dtype):
    """Accumulation type for a storage dtype: float64 for float64, float32 otherwise."""
    return tl.float64 if dtype == torch.float64 else tl.float32


@functools.lru_cache(maxsize=64)
def _tables(cols_bytes: bytes, weights_bytes: bytes, shape: tuple, device: torch.device, wdtype: torch.dtype):
    cols = torch.frombuffer(bytearray(cols_bytes), dtype=torch.int32).reshape(shape).to(device)
    weights = torch.frombuffer(bytearray(weights_bytes), dtype=torch.float64).reshape(shape).to(device, wdtype)
    return cols, weights


def device_tables(cols: np.ndarray, weights: np.ndarray, T: int, device: torch.device, dtype: torch.dtype):
    """Check ELL tables against T frames and return them as tensors on ``device`` (cached per
    table and device, so a repeated operator costs no host-to-device copy).  Weights are
    float32, or float64 for float64 volumes."""
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if cols.ndim != 2 or cols.shape != weights.shape or cols.shape[0] != T:
        raise ValueError(f"ELL tables cols {cols.shape} / weights {weights.shape} do not fit {T} frames (need (T, W))")
    if cols.size and (cols.min() < 0 or cols.max() >= T):
        raise ValueError(f"ELL column index out of range [0, {T}): min {cols.min()}, max {cols.max()}")
    wdtype = torch.float64 if dtype == torch.float64 else torch.float32
    return _tables(cols.tobytes(), weights.tobytes(), cols.shape, device, wdtype)


def check_operand(x: torch.Tensor, name: str = "x") -> None:
    """Raise unless ``x`` is a (T, P) tensor these kernels can run (dtype, device)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a (T, P) tensor, got shape {tuple(x.shape)}")
    if x.dtype not in DTYPES:
        raise TypeError(f"{name} has dtype {x.dtype}; the Triton kernels take {', '.join(map(str, DTYPES))}")
    if x.device.type != "cuda" and not (INTERPRETED and x.device.type == "cpu"):
        raise ValueError(
            f"{name} is on {x.device}; the Triton kernels need CUDA tensors, or CPU tensors with "
            f"TRITON_INTERPRET=1 set before triton is imported"
        )


def on_device(device: torch.device):
    """Context that makes ``device`` current for a launch (Triton launches on the current CUDA device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def launch_band(x: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor, out: torch.Tensor,
                tiles: Tiling, dots: torch.Tensor | None = None) -> None:
    """``out = M x`` with device tables; with ``dots`` also write each program's ``<x, out>`` share there."""
    with on_device(x.device):
        _band_kernel[tiles.grid](
            x, cols, weights, out, dots if dots is not None else out, tiles.T, tiles.P, tiles.frames,
            W=cols.shape[1], BLOCK_P=tiles.block_p, ACC=acc_dtype(x.dtype), DOT=dots is not None,
            num_warps=tiles.num_warps,
        )


def band_apply(x: torch.Tensor, cols: np.ndarray, weights: np.ndarray, *, block_p: int | None = None,
               frames: int | None = None) -> torch.Tensor:
    """Return ``M @ x`` for a (T, P) tensor ``x`` and M in ELL form, in one launch.

    ``out[t, p] = sum_k weights[t, k] * x[cols[t, k], p]``, accumulated in
    float32 (float64 for float64 ``x``) and stored in ``x``'s dtype.  ``x`` is
    not modified.  ``block_p``/``frames`` override the tiling (:func:`tiling`).
    """
    check_operand(x)
    x = x.contiguous()
    T, P = x.shape
    dev_cols, dev_weights = device_tables(cols, weights, T, x.device, x.dtype)
    out = torch.empty_like(x)
    if x.numel():
        launch_band(x, dev_cols, dev_weights, out, tiling(T, P, x.device, block_p, frames, x.element_size()))
    return out
