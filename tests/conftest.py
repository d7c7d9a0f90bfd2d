"""Test-session setup shared by every test module.

Triton's interpreter must be switched on before triton is first imported, so it
is done here: on a machine without CUDA, Triton kernels run on CPU tensors
through ``TRITON_INTERPRET=1`` (tests marked ``triton``).  With a GPU the
real compiler is used.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
# The prior's network runs in torch unless a test asks for another engine (tests/test_prior_engine.py):
# no ONNX export into the user's cache from the rest of the suite.
os.environ.setdefault("SVIMG_PRIOR_ENGINE", "torch")

torch.manual_seed(0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny volumes and networks on a shared 2-core machine: a thread team costs more than it saves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
