"""A recorded measurement made from sharp frames: a clip cut from a longer video, blurred, noisy, 8-bit.

From S sharp frames x (a stretch of a longer recording) and a temporal PSF k of
``support`` taps, the camera records ``S - support + 1`` complete exposures (the
"valid" model of :class:`~svimg.ops.TemporalPSF`), then noise and rounding::

    y = round((clip(A x + sigma n, 0, 1)) * (2^bits - 1)) / (2^bits - 1),   n ~ N(0, I)

and the truth for exposure t is the sharp frame at its centre, ``x[t + lead]``
(``lead, trail = op.margins``): the frames a restoration of y is aligned with.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_positive_int, check_positive_number

__all__ = ["record"]


def record(video, op, *, noise_std: float = 0.01, bits: int | None = 8, seed: int = 0):
    """(y, truth) for the sharp frames ``video`` degraded by ``op`` (module docstring).

    ``video``: the sharp frames, any input :func:`svimg.forward_op` takes; ``op``: the
    degradation (its temporal PSF should have the "valid" boundary for a clip cut from a
    longer recording); ``bits`` None skips the rounding.  Both results have ``video``'s type;
    ``truth`` is ``video`` without ``op.margins`` frames at either end.
    """
    from .. import forward_op

    noise_std = check_positive_number(noise_std, "noise_std", allow_zero=True)
    y = forward_op(video, op)
    values = np.asarray(y, dtype=np.float64)
    values = values + noise_std * np.random.default_rng(seed).standard_normal(values.shape)
    values = np.clip(values, 0.0, 1.0)
    if bits is not None:
        levels = 2 ** check_positive_int(bits, "bits") - 1
        values = np.round(values * levels) / levels
    lead, trail = op.margins
    truth = video[lead:len(video) - trail]
    return _like(y, values), truth


def _like(y, values: np.ndarray):
    """``values`` in the type, dtype and (for xarray) coords and attrs of ``y``."""
    if hasattr(y, "copy") and hasattr(y, "dims"):
        return y.copy(data=values.astype(y.dtype))
    if isinstance(y, np.ndarray):
        return values.astype(y.dtype)
    import torch

    return torch.as_tensor(values, dtype=y.dtype, device=y.device)
