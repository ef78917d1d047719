"""The clipped share (sonic/metrics/saturation.py) on constructed images."""

import pytest
import torch

from sonic.metrics.saturation import clipped_share, quantised


def test_an_image_of_0s_and_255s_is_all_clipped_and_mid_grey_none():
    g = torch.Generator().manual_seed(0)
    black_white = (torch.rand(2, 3, 8, 8, generator=g) > 0.5).float()  # every value 0 or 1
    assert clipped_share(black_white) == 1.0
    assert clipped_share(torch.full((2, 3, 8, 8), 0.5)) == 0.0
    assert clipped_share(torch.zeros(1, 3, 4, 4)) == clipped_share(torch.ones(1, 3, 4, 4)) == 1.0


def test_the_share_counts_values_over_every_channel_after_8_bit_rounding():
    image = torch.full((1, 3, 4, 4), 0.5)
    image[0, 0, 0, :] = 1.0  # 4 of 48 values saturate in the red channel only
    image[0, 1, 1, :2] = 0.4 / 255  # rounds to level 0: clipped
    image[0, 2, 2, :2] = 0.6 / 255  # rounds to level 1: not clipped
    image[0, 2, 3, :2] = 254.4 / 255  # level 254: not clipped
    assert clipped_share(image) == pytest.approx(6 / 48)
    overshoot = torch.full((1, 3, 2, 2), 0.5)
    overshoot[0, :, 0, 0] = torch.tensor([1.7, -0.3, 0.5])  # out of range: clamped as when saved, so clipped
    assert clipped_share(overshoot) == pytest.approx(2 / 12)
    assert quantised(overshoot)[0, :, 0, 0].tolist() == [255.0, 0.0, 128.0]


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="no images"):
        clipped_share(torch.zeros(0, 3, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        clipped_share(torch.zeros(3, 4, 4))
