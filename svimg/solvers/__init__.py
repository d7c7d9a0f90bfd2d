"""Classical solvers on (T, C, H, W) volumes: conjugate gradients and ADMM-TV."""

from .cg import conjugate_gradient, normal_system

__all__ = ["conjugate_gradient", "normal_system"]
