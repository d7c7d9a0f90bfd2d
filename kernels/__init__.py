"""Compiled CPU kernels (Cython) and Triton GPU kernels; see svimg._dispatch."""
