"""Linear degradation operators with exact adjoints.

Temporal (along t): :class:`TemporalPSF`.  Spatial (per frame): :class:`GaussianBlur`,
:class:`Downsample`, :class:`Mask`, :class:`RandomMask`.  Algebra: ``A @ B``
(B first), ``s * A``, :class:`Identity`.

Kernels.  The temporal operators and the blur run through :mod:`svimg._dispatch`.
Where more than one kernel can run an input (on the CPU: the Cython kernel and
torch, for float32/float64 without autograd), the first call of each problem
class (device, dtype, frames, size class, thread count, operator) times them on
the actual input and keeps the fastest, so the choice follows what was measured
on this machine at this thread count, not a fixed preference.  Each choice and
its measured medians are logged on the ``svimg.dispatch`` logger at DEBUG level
(``logging.getLogger("svimg.dispatch").setLevel("DEBUG")``) and listed by
``svimg._timing.choices()``; ``SVIMG_BACKEND=torch|cython|triton`` forces one.
"""

from .base import AxisFactors, Composed, Identity, LinearOperator, Scaled
from .spatial import Downsample, GaussianBlur, Mask, RandomMask
from .temporal import BOUNDARIES, TemporalPSF

__all__ = [
    "LinearOperator",
    "Composed",
    "Scaled",
    "Identity",
    "AxisFactors",
    "TemporalPSF",
    "BOUNDARIES",
    "GaussianBlur",
    "Downsample",
    "Mask",
    "RandomMask",
]
