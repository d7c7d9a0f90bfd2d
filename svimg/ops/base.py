"""The operator protocol and its algebra: composition, scaling, identity.

Every operator maps a (T, C, H, W) tensor to a (T', C, H', W') tensor and knows
its exact adjoint.  Composition follows the matrix convention: ``(A @ B) x =
A (B x)``, so ``Downsample(4) @ TemporalPSF(7)`` blurs in time first.

Separable operators also say so: ``kronecker(input_shape)`` returns A as one
matrix per axis (:class:`AxisFactors`), which lets a solver diagonalise A^T A
axis by axis (:mod:`svimg.solvers.eigenbasis`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["LinearOperator", "Composed", "Scaled", "Identity", "AxisFactors"]

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class AxisFactors:
    """A = scale * (M_t ⊗ M_c ⊗ M_h ⊗ M_w) on a (T, C, H, W) volume.

    ``matrices`` maps an axis (0..3) to its float64 (n_out, n_in) matrix; an axis not
    listed is the identity.
    """

    scale: float = 1.0
    matrices: dict = field(default_factory=dict)

    def after(self, inner: "AxisFactors") -> "AxisFactors":
        """The factors of (self @ inner): per axis M_self @ M_inner (Kronecker products multiply axis by axis)."""
        mats = dict(inner.matrices)
        for axis, m in self.matrices.items():
            mats[axis] = m @ mats[axis] if axis in mats else m
        return AxisFactors(self.scale * inner.scale, mats)

    def transposed(self) -> "AxisFactors":
        """The factors of A^T."""
        return AxisFactors(self.scale, {axis: m.T for axis, m in self.matrices.items()})


class LinearOperator:
    """A linear map A on (T, C, H, W) volumes with its exact adjoint A^T.

    Subclasses implement ``forward`` and ``adjoint``; ``normal`` (A^T A) may be
    overridden by a fused version.  Shapes: ``output_shape`` maps an input shape
    to the measurement shape and ``input_shape`` goes back (raising when no
    input shape produces that output).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^T A x."""
        return self.adjoint(self.forward(x))

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def input_shape(self, output_shape: Shape) -> Shape:
        return tuple(output_shape)

    def kronecker(self, input_shape: Shape) -> AxisFactors | None:
        """A at this input shape as one matrix per axis (:class:`AxisFactors`), or None when it is not one."""
        return None

    @property
    def support_t(self) -> int:
        """Input frames one measured frame depends on (1 for a per-frame operator)."""
        return 1

    @property
    def margins(self) -> tuple[int, int]:
        """(lead, trail): input frames before the first and after the last measured frame's own.

        Nonzero for a temporal PSF with the "valid" boundary (:class:`~svimg.ops.TemporalPSF`):
        input frame ``t + lead`` is the one measured frame t is centred on.
        """
        return (0, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composed(self, other)

    def __mul__(self, scale) -> "LinearOperator":
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            return NotImplemented
        return Scaled(self, float(scale))

    __rmul__ = __mul__

    @property
    def T(self) -> "LinearOperator":
        """The adjoint as an operator of its own."""
        return _Adjoint(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Identity(LinearOperator):
    """I x = x (returned as a new tensor, so results never alias the input)."""

    def forward(self, x):
        return x.clone()

    adjoint = forward
    normal = forward

    def kronecker(self, input_shape):
        return AxisFactors()


class Composed(LinearOperator):
    """(outer @ inner) x = outer(inner(x)); adjoint inner^T(outer^T(y))."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        self.outer, self.inner = outer, inner
        self._commutes: dict[tuple, bool] = {}

    def forward(self, x):
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y):
        return self.inner.adjoint(self.outer.adjoint(y))

    def normal(self, x):
        """inner^T (outer^T outer) inner x, using the outer operator's (possibly fused) normal.

        When the two are Kronecker factors on disjoint axes (a spatial operator after a temporal
        one) they commute, and A^T A = (outer^T outer)(inner^T inner): both fused normals, no
        intermediate measurement.
        """
        if self.commutes(tuple(x.shape)):
            return self.outer.normal(self.inner.normal(x))
        return self.inner.adjoint(self.outer.normal(self.inner.forward(x)))

    def commutes(self, input_shape) -> bool:
        """Whether outer and inner act on disjoint axes of this input shape (so outer @ inner = inner @ outer)."""
        if input_shape not in self._commutes:
            pair = self._factor_pair(input_shape)
            self._commutes[input_shape] = pair is not None and not set(pair[0].matrices) & set(pair[1].matrices)
        return self._commutes[input_shape]

    def _factor_pair(self, input_shape) -> tuple[AxisFactors, AxisFactors] | None:
        """(outer's, inner's) :class:`AxisFactors` at this input shape, or None when either has none."""
        inner = self.inner.kronecker(input_shape)
        outer = None if inner is None else self.outer.kronecker(self.inner.output_shape(input_shape))
        return None if outer is None else (outer, inner)

    def output_shape(self, input_shape):
        return self.outer.output_shape(self.inner.output_shape(input_shape))

    def input_shape(self, output_shape):
        return self.inner.input_shape(self.outer.input_shape(output_shape))

    def kronecker(self, input_shape):
        pair = self._factor_pair(input_shape)
        return None if pair is None else pair[0].after(pair[1])

    @property
    def margins(self):
        (a, b), (c, d) = self.outer.margins, self.inner.margins
        return (a + c, b + d)

    @property
    def support_t(self):
        return self.outer.support_t + self.inner.support_t - 1

    def factors(self) -> list[LinearOperator]:
        """The chain of operators, outermost first."""
        left = self.outer.factors() if isinstance(self.outer, Composed) else [self.outer]
        right = self.inner.factors() if isinstance(self.inner, Composed) else [self.inner]
        return left + right

    def __repr__(self):
        return " @ ".join(repr(f) for f in self.factors())


class Scaled(LinearOperator):
    """(s A) x = s (A x); adjoint s A^T; normal s^2 A^T A."""

    def __init__(self, op: LinearOperator, scale: float):
        self.op, self.scale = op, float(scale)

    def forward(self, x):
        return self.scale * self.op.forward(x)

    def adjoint(self, y):
        return self.scale * self.op.adjoint(y)

    def normal(self, x):
        return (self.scale**2) * self.op.normal(x)

    def output_shape(self, input_shape):
        return self.op.output_shape(input_shape)

    def input_shape(self, output_shape):
        return self.op.input_shape(output_shape)

    def kronecker(self, input_shape):
        f = self.op.kronecker(input_shape)
        return None if f is None else AxisFactors(self.scale * f.scale, f.matrices)

    @property
    def margins(self):
        return self.op.margins

    @property
    def support_t(self):
        return self.op.support_t

    def __repr__(self):
        return f"{self.scale:g} * {self.op!r}"


class _Adjoint(LinearOperator):
    """A^T viewed as an operator: forward is A^T, adjoint is A."""

    def __init__(self, op: LinearOperator):
        self.op = op

    def forward(self, x):
        return self.op.adjoint(x)

    def adjoint(self, y):
        return self.op.forward(y)

    def output_shape(self, input_shape):
        return self.op.input_shape(input_shape)

    def input_shape(self, output_shape):
        return self.op.output_shape(output_shape)

    def kronecker(self, input_shape):
        f = self.op.kronecker(self.op.input_shape(input_shape))
        return None if f is None else f.transposed()

    def __repr__(self):
        return f"{self.op!r}.T"
