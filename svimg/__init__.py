"""svimg: video inverse problems solved with an image diffusion prior.

The functional core works on numpy arrays, torch tensors and xarray DataArrays
shaped (T, C, H, W) or (T, H, W), values in [0, 1]; ``channel_axis=-1`` takes
(T, H, W, C) arrays and answers in that layout (the rule: :mod:`svimg._convert`)::

    import svimg
    from svimg.ops import TemporalPSF
    y = svimg.forward_op(x, TemporalPSF(7))
    x_hat = svimg.sample(y, op=TemporalPSF(7))
"""

__version__ = "0.1.0"

from . import ops  # noqa: E402
from ._api import adjoint_op, cg_solve, forward_op  # noqa: E402

# Subpackages load on first attribute access (``svimg.io``, ``svimg.data`` ...), so that
# ``import svimg`` stays light and never pulls in Qt/napari.
_SUBMODULES = ("baselines", "blind", "data", "distributed", "io", "metrics", "priors", "sampling", "solvers")

__all__ = ["__version__", "ops", "forward_op", "adjoint_op", "cg_solve", "sample", *_SUBMODULES]


def __getattr__(name):
    import importlib

    if name == "sample":  # the sampler pulls in the prior machinery: load it on first use
        return importlib.import_module(".sampling", __name__).sample
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'svimg' has no attribute {name!r}")
