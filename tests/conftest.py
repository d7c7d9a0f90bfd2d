"""Test-session setup shared by every test module.

Triton's interpreter must be switched on before triton is first imported, so it
is done here: on a machine without CUDA, Triton kernels run on CPU tensors
through ``TRITON_INTERPRET=1`` (tests marked ``triton``).  With a GPU the
real compiler is used.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

torch.manual_seed(0)
