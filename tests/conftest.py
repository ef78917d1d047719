import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    from tests.tiny import write_sd_folder

    return write_sd_folder(tmp_path_factory.mktemp("sd"))
