"""Helpers shared by the operator, CG and kernel tests: dense matrices by probing, dot products."""

from __future__ import annotations

import numpy as np
import torch

from svimg.ops import LinearOperator

#: relative tolerance of a dot test per dtype: float32 precision, or tight for float64
DOT_RTOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def dense(op: LinearOperator, in_shape: tuple, dtype=torch.float64) -> np.ndarray:
    """The matrix of ``op`` on flattened (T, C, H, W) volumes of ``in_shape``, built column by column."""
    n = int(np.prod(in_shape))
    basis = torch.eye(n, dtype=dtype).reshape(n, *in_shape)
    columns = [op.forward(e).reshape(-1) for e in basis]
    return torch.stack(columns, dim=1).numpy()


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """<a, b> over every element, in float64."""
    return float(torch.sum(a.double() * b.double()))


def norm(a: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a.double()))


def adjoint_gap(op: LinearOperator, u: torch.Tensor, v: torch.Tensor) -> tuple[float, float]:
    """(|<A u, v> - <u, A^T v>|, the scale that bounds its rounding error)."""
    Au, ATv = op.forward(u), op.adjoint(v)
    gap = abs(inner(Au, v) - inner(u, ATv))
    return gap, norm(Au) * norm(v) + norm(u) * norm(ATv)
