"""The functional API: ``forward_op``, ``adjoint_op``, ``cg_solve``.

Each accepts numpy arrays, torch tensors, xarray DataArrays (and zarr stores)
and returns the type it was given; see :mod:`svimg._convert`.
"""

from __future__ import annotations

import torch

from ._convert import to_volume
from ._provenance import provenance
from ._validate import check_positive_int
from .ops.base import LinearOperator
from .solvers.cg import conjugate_gradient, normal_system

__all__ = ["forward_op", "adjoint_op", "cg_solve", "check_measurement"]


def _check_op(op) -> LinearOperator:
    if not isinstance(op, LinearOperator):
        raise TypeError(f"op must be an svimg.ops.LinearOperator (e.g. TemporalPSF(7)), got {type(op).__name__}")
    return op


def check_measurement(op: LinearOperator, y: torch.Tensor, name: str = "y") -> tuple:
    """Return the input shape that ``op`` maps onto ``y``'s shape, or raise naming both shapes."""
    shape = tuple(y.shape)
    x_shape = op.input_shape(shape)
    if tuple(op.output_shape(x_shape)) != shape:
        raise ValueError(f"{name} of shape {shape} is not an output of {op!r} (it maps {x_shape} to {op.output_shape(x_shape)})")
    return x_shape


def forward_op(x, op: LinearOperator):
    """y = A x: degrade a video ``x`` with the operator ``op``."""
    _check_op(op)
    vol = to_volume(x, "x")
    with torch.no_grad():
        y = op.forward(vol.tensor)
    return vol.wrap(y, provenance("forward_op", op))


def adjoint_op(y, op: LinearOperator):
    """x = A^T y: apply the exact adjoint of ``op`` to a measurement ``y``."""
    _check_op(op)
    vol = to_volume(y, "y")
    check_measurement(op, vol.tensor)
    with torch.no_grad():
        x = op.adjoint(vol.tensor)
    return vol.wrap(x, provenance("adjoint_op", op))


def cg_solve(op: LinearOperator, y, x0=None, n_iter: int = 5, gamma: float | None = None, tol: float = 1e-5,
             callback=None, return_history: bool = False):
    """Conjugate gradients on the whole video (all frames coupled).

    Solves ``A^T A x = A^T y`` or, when ``gamma`` is given,
    ``(I + gamma A^T A) x = x0 + gamma A^T y`` (DDS's regularised data step),
    starting from ``x0`` (zeros by default).  ``callback(k, x_k, ||r_k||)`` is
    called after every iteration.  Returns x in ``y``'s type, plus the list of
    residual norms when ``return_history`` is true.
    """
    _check_op(op)
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    if gamma is not None and not (isinstance(gamma, (int, float)) and gamma > 0):
        raise ValueError(f"gamma must be a positive number or None, got {gamma!r}")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    vol = to_volume(y, "y")
    yt = vol.tensor
    x_shape = check_measurement(op, yt)
    if x0 is None:
        start = torch.zeros(x_shape, dtype=yt.dtype, device=yt.device)
    else:
        start = to_volume(x0, "x0").tensor.to(dtype=yt.dtype, device=yt.device)
        if tuple(start.shape) != tuple(x_shape):
            raise ValueError(f"x0 has shape {tuple(start.shape)} but {op!r} needs inputs of shape {x_shape} for y of shape {tuple(yt.shape)}")
    with torch.no_grad():
        H, b = normal_system(op, yt, start, gamma)
        x, history = conjugate_gradient(H, b, start, n_iter, tol, callback)
    out = vol.wrap(x, provenance("cg_solve", op, n_iter=n_iter, gamma=gamma, tol=tol))
    return (out, history) if return_history else out
