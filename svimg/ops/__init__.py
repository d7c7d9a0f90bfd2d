"""Linear degradation operators with exact adjoints.

Temporal (along t): :class:`TemporalPSF`.  Spatial (per frame): :class:`GaussianBlur`,
:class:`Downsample`, :class:`Mask`, :class:`RandomMask`.  Algebra: ``A @ B``
(B first), ``s * A``, :class:`Identity`.
"""

from .base import Composed, Identity, LinearOperator, Scaled
from .spatial import Downsample, GaussianBlur, Mask, RandomMask
from .temporal import BOUNDARIES, TemporalPSF

__all__ = [
    "LinearOperator",
    "Composed",
    "Scaled",
    "Identity",
    "TemporalPSF",
    "BOUNDARIES",
    "GaussianBlur",
    "Downsample",
    "Mask",
    "RandomMask",
]
