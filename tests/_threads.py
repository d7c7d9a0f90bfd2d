"""Fixture for tests of tiny networks: one torch thread (thread sync dominates on a busy 2-core CPU)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
