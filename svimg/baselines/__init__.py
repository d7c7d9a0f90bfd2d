"""The paper's baselines, called like :func:`svimg.sample` as ``f(y, op, ...)``.

``cg_only``         CG from zeros on A^T A x = A^T y (no prior)
``admm_tv``         ADMM with anisotropic 3-D TV over (t, y, x)
``dps``             diffusion posterior sampling, 2-D prior per frame
``diffusion_mbir``  DDS-like sampling with an ADMM-TV (along t) data step
"""

from .classical import admm_tv, cg_only
from .diffusion import diffusion_mbir, dps

__all__ = ["cg_only", "admm_tv", "dps", "diffusion_mbir"]
