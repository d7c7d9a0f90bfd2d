"""Classical solvers on (T, C, H, W) volumes: conjugate gradients and ADMM-TV."""

from .admm_tv import admm_tv
from .cg import conjugate_gradient, normal_system

__all__ = ["conjugate_gradient", "normal_system", "admm_tv"]
