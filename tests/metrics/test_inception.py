"""The FID Inception network written here (sonic.metrics.inception): the weights file's layout, TF-1.x resizing, the
features, and clear errors. Its output was checked bit for bit against torch-fidelity 0.3's
FeatureExtractorInceptionV3 on the same random weights file (docs/evaluation.md); torch-fidelity itself cannot be
imported here (it imports torchvision)."""

import pytest
import torch

from sonic.metrics.fid import InceptionFeatures, fid_from_features
from sonic.metrics.inception import FidInceptionV3, resize_like_tf1

# (key, shape) of pt_inception-2015-12-05-6726825d.pth, one per block type
KNOWN = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    "fc.weight": (1008, 2048),
}


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FidInceptionV3().random_init_().state_dict(), path)
    return path


def test_the_module_has_the_weights_file_layout():
    state = FidInceptionV3().state_dict()
    assert len(state) == 566
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var",
                                                                       "num_batches_tracked"))) == 23_850_960
    for key, shape in KNOWN.items():
        assert tuple(state[key].shape) == shape, key


def test_resize_is_tf1_bilinear_without_half_pixel_offset():
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]])[None, None]
    # source coordinate dst * in / out = 0, .5, 1, 1.5 (clamped at the last pixel); PyTorch's own
    # align_corners=False would start at 0, 0.5, 1.5, 2 instead
    want = torch.tensor([[0, 1, 2, 2], [2, 3, 4, 4], [4, 5, 6, 6], [4, 5, 6, 6]], dtype=torch.float32)
    assert torch.equal(resize_like_tf1(x, 4)[0, 0], want)
    same = torch.rand(1, 3, 299, 299)
    assert torch.equal(resize_like_tf1(same), same)


def test_features_are_deterministic_and_fid_of_a_set_with_itself_is_zero(weights):
    net = InceptionFeatures(str(weights))
    images = torch.rand(6, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    a, b = net(images), net(images)
    assert a.shape == (6, 2048) and torch.equal(a, b) and a.abs().mean() > 1e-3  # not a dead random network
    other = fid_from_features(a, net(1 - images))
    assert abs(fid_from_features(a, a)) < 1e-3 * other  # 0 up to sqrtm's error on a rank-5 covariance


def test_a_wrong_file_is_an_error_naming_it(tmp_path, weights):
    state = torch.load(weights, weights_only=True)
    del state["Mixed_6b.branch1x1.conv.weight"]
    state["extra"] = torch.zeros(1)
    bad = tmp_path / "other.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"other\.pth.*missing \['Mixed_6b\.branch1x1\.conv\.weight'\].*'extra'"):
        FidInceptionV3.from_file(bad)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth: cannot be read"):
        FidInceptionV3.from_file(tmp_path / "junk.pth")
    with pytest.raises(ValueError, match="expected uint8"):
        FidInceptionV3()(torch.rand(1, 3, 8, 8))
