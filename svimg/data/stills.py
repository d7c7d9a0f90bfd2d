"""Still photographs bundled with scikit-image (training data for the bundled prior)."""

from __future__ import annotations

import numpy as np

__all__ = ["stills", "STILL_NAMES"]

# Natural photographs that scikit-image ships inside its wheel (no download).
# Synthetic test patterns (checkerboard, blobs, logos, phantoms) are left out.
STILL_NAMES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
    "motorcycle_left", "motorcycle_right",
)


def _load(name: str) -> np.ndarray:
    from skimage import data

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        return left if name.endswith("left") else right
    return getattr(data, name)()


def stills(names=None) -> dict[str, np.ndarray]:
    """Return scikit-image's bundled photographs as float32 (H, W, 3) arrays in [0, 1].

    Grey images are repeated over three channels.  These are training data for
    the bundled prior only.  ``names`` selects a subset of ``STILL_NAMES``.
    """
    try:
        import skimage  # noqa: F401
    except ImportError as err:  # pragma: no cover - skimage is a core dependency
        raise ImportError("svimg.data.stills() needs scikit-image (pip install scikit-image)") from err
    if names is None:
        names = STILL_NAMES
    elif isinstance(names, str):
        names = (names,)
    unknown = [n for n in names if n not in STILL_NAMES]
    if unknown:
        raise ValueError(f"names: unknown still image(s) {unknown}; expected some of {list(STILL_NAMES)}")
    out = {}
    for name in names:
        img = np.asarray(_load(name))
        img = img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        out[name] = np.ascontiguousarray(img[..., :3])
    return out
