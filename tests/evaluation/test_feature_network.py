"""The FID feature network (sonic/evaluation/references.py `feature_network`; SPEC §7): the network that
models.fid_features names, never a CLIP, never unset."""

import pytest
import torch

from sonic import config as config_mod
from sonic.evaluation.references import feature_network
from sonic.metrics.fid import FidNetFeatures, InceptionFeatures
from tests.tiny import square_pairs, tiny_config_dict, write_clip_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from sonic.demo.pretrain.fid import FidNetSettings, train_fidnet

    root = tmp_path_factory.mktemp("fidnet")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = FidNetSettings(steps=5, batch_size=6, warmup_steps=1, image_size=16, widths=(8, 16))
        train_fidnet(square_pairs(root / "frames"), [], root / "fid", settings)
    finally:
        torch.set_num_threads(threads)
    return root / "fid", write_clip_folder(root / "clip")


def cfg_with(sd, clip, fid):
    data = tiny_config_dict(sd)
    data["models"].update({"clip_ais": str(clip), "clip_eval": str(clip), "fid_features": fid and str(fid)})
    return config_mod.from_dict(data, "test config")


def test_a_fid_folder_gives_its_own_network_sharing_nothing_with_clip(folders, sd_folder):
    from transformers import PreTrainedModel

    from sonic.models.registry import load_clip

    fid, clip_dir = folders
    cfg = cfg_with(sd_folder, clip_dir, fid)
    clip = load_clip(cfg, "clip_eval")
    net = feature_network(cfg)
    assert isinstance(net, FidNetFeatures) and net.num_features == 16
    assert not any(isinstance(m, PreTrainedModel) for m in net.modules())  # a different class entirely
    clip_storage = {p.untyped_storage().data_ptr() for p in clip.model.parameters()}
    assert not clip_storage & {p.untyped_storage().data_ptr() for p in net.parameters()}
    # the SD folder's text encoder (what the generators condition on) is not in it either
    assert not any("text" in name or "clip" in name.lower() for name, _ in net.named_parameters())
    assert net(torch.rand(3, 3, 16, 16)).shape == (3, 16)


def test_a_file_gives_the_fid_inception(tmp_path, folders, sd_folder):
    from sonic.demo.random_models import write_fid_inception

    _, clip_dir = folders
    weights = write_fid_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")
    assert isinstance(feature_network(cfg_with(sd_folder, clip_dir, weights)), InceptionFeatures)


def test_no_fallback_to_clip(tmp_path, folders, sd_folder):
    fid, clip_dir = folders
    with pytest.raises(config_mod.ConfigError, match="test config: models.fid_features is not set"):
        feature_network(cfg_with(sd_folder, clip_dir, None))
    with pytest.raises(config_mod.ConfigError, match=r"is, or is inside, models.clip_eval .* and models.clip_ais"):
        cfg_with(sd_folder, clip_dir, clip_dir)
    copy = write_clip_folder(tmp_path / "clip_copy")  # another CLIP at another place: not a FID network folder
    with pytest.raises(ValueError, match="expected format 'sonic-fidnet'"):
        feature_network(cfg_with(sd_folder, clip_dir, copy))
    with pytest.raises(FileNotFoundError, match="not a FID network"):
        feature_network(cfg_with(sd_folder, clip_dir, tmp_path))
