"""The functional API: ``forward_op``, ``adjoint_op``, ``cg_solve``.

Each accepts numpy arrays, torch tensors, xarray DataArrays (and zarr stores)
and returns the type and layout it was given; ``channel_axis`` says where a
4-D array keeps its channels (-1 for (T, H, W, C)); see :mod:`svimg._convert`
for the layout rule.
"""

from __future__ import annotations

import torch

from ._convert import to_volume
from ._provenance import provenance
from ._validate import check_callback, check_gamma, check_positive_int, check_positive_number, finite_check_during
from .ops.base import LinearOperator
from .solvers.cg import conjugate_gradient, normal_system

__all__ = ["forward_op", "adjoint_op", "cg_solve", "check_measurement"]


def _check_op(op) -> LinearOperator:
    if not isinstance(op, LinearOperator):
        raise TypeError(f"op must be an svimg.ops.LinearOperator (e.g. TemporalPSF(7)), got {type(op).__name__}")
    return op


def _shape_error(name: str, shape: tuple, op: LinearOperator, err: Exception) -> ValueError:
    return ValueError(f"{name} of shape {shape} does not fit {op!r}: {err}")


def check_measurement(op: LinearOperator, y: torch.Tensor, name: str = "y") -> tuple:
    """Return the input shape x_shape with ``op.output_shape(x_shape) == y.shape``, or raise naming ``name``."""
    shape = tuple(y.shape)
    try:
        x_shape = tuple(op.input_shape(shape))
        out_shape = tuple(op.output_shape(x_shape))
    except ValueError as err:
        raise _shape_error(name, shape, op, err) from err
    if out_shape != shape:
        raise ValueError(f"{name} of shape {shape} is not an output of {op!r} (it maps {x_shape} to {out_shape})")
    return x_shape


def forward_op(x, op: LinearOperator, *, channel_axis: int | None = None):
    """y = A x: degrade a video ``x`` with the operator ``op``."""
    _check_op(op)
    vol = to_volume(x, "x", finite=False, channel_axis=channel_axis)
    try:
        op.output_shape(tuple(vol.tensor.shape))
    except ValueError as err:
        raise _shape_error("x", tuple(vol.tensor.shape), op, err) from err
    with torch.no_grad(), finite_check_during(vol.tensor, "x"):  # NaN/Inf raise; a kernel may check on the way
        y = op.forward(vol.tensor)
    return vol.wrap(y, lambda: provenance("forward_op", op))


def adjoint_op(y, op: LinearOperator, *, channel_axis: int | None = None):
    """x = A^T y: apply the exact adjoint of ``op`` to a measurement ``y``."""
    _check_op(op)
    vol = to_volume(y, "y", finite=False, channel_axis=channel_axis)
    check_measurement(op, vol.tensor)
    with torch.no_grad(), finite_check_during(vol.tensor, "y"):
        x = op.adjoint(vol.tensor)
    return vol.wrap(x, lambda: provenance("adjoint_op", op))


def cg_solve(op: LinearOperator, y, x0=None, n_iter: int = 5, gamma: float | None = None, tol: float = 1e-5,
             callback=None, return_history: bool = False, channel_axis: int | None = None):
    """Conjugate gradients on the whole video (all frames coupled).

    Solves ``A^T A x = A^T y`` or, when ``gamma`` is given,
    ``(I + gamma A^T A) x = x0 + gamma A^T y`` (DDS's regularised data step),
    starting from ``x0`` (zeros by default).  CG stops after ``n_iter``
    iterations or once the residual norm ``||b - H x_k||`` drops below ``tol``.
    ``callback(k, x_k, ||r_k||)`` is called after iteration k with a copy of
    the iterate in ``y``'s type (raise from it to stop).  Returns x in
    ``y``'s type, plus the residual norms ``[||r_0||, ||r_1||, ...]`` when
    ``return_history`` is true.
    """
    _check_op(op)
    n_iter = check_positive_int(n_iter, "n_iter", minimum=0)
    gamma = check_gamma(gamma)
    tol = check_positive_number(tol, "tol", allow_zero=True)
    check_callback(callback)
    vol = to_volume(y, "y", channel_axis=channel_axis)
    yt = vol.tensor
    x_shape = check_measurement(op, yt)
    if x0 is None:
        start = torch.zeros(x_shape, dtype=yt.dtype, device=yt.device)
    else:
        start = to_volume(x0, "x0", channel_axis=channel_axis).tensor.to(dtype=yt.dtype, device=yt.device)
        if tuple(start.shape) != tuple(x_shape):
            raise ValueError(f"x0 has shape {tuple(start.shape)} but {op!r} needs inputs of shape {x_shape} for y of shape {tuple(yt.shape)}")
    with torch.no_grad():
        H, b = normal_system(op, yt, start, gamma)
        report = None if callback is None else (lambda k, xk, rk: callback(k, vol.wrap(xk.clone()), rk))
        x, history = conjugate_gradient(H, b, start, n_iter, tol, report)
    out = vol.wrap(x, lambda: provenance("cg_solve", op, n_iter=n_iter, gamma=gamma, tol=tol))
    return (out, history) if return_history else out
