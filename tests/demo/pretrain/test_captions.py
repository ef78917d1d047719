"""Reference captions: the class in words plus the brightness read off the frame."""

import numpy as np
import pytest

from sonic.demo.pretrain.captions import brightness_word, class_phrase, reference_caption


@pytest.mark.parametrize(("label", "phrase"), [
    ("wood", "a drumstick hitting wood"),
    ("fire crackling", "a landscape with fire crackling"),
    ("happy", "a happy face singing"),
    ("forest+rain", "a hiking trail with forest and rain"),
    ("hiking", "a hiking trail"),
])
def test_class_phrases(label, phrase):
    assert class_phrase(label) == phrase


def test_brightness_follows_luminance():
    words = [brightness_word(np.full((4, 4, 3), v, np.uint8)) for v in (10, 100, 200)]
    assert words == ["dark", "dim", "bright"]
    assert reference_caption("metal", np.full((4, 4, 3), 220, np.uint8)) == "a bright photo of a drumstick hitting metal"
