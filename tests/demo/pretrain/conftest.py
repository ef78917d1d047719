import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The miniature models train faster on one thread (a second one mostly waits, and spins when the cores are
    busy); restored after each module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
