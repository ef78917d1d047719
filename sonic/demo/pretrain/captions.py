"""Reference captions of synthetic clips: what a human would write about the frame
(docs/pretrained-models.md).

The miniature CLIP, CLAP and BLIP-2 learn language from these; the real BLIP-2 is never needed on the demo
profile. A caption names the class in words and one continuous factor read off the frame (brightness, which
the synthetic world couples to loudness), e.g. "a bright photo of a drumstick hitting wood".
"""

from __future__ import annotations

import numpy as np

BRIGHTNESS_WORDS = ((0.0, "dark"), (0.33, "dim"), (0.5, "bright"))  # mean luminance in [0, 1] -> adjective


def class_phrase(label: str) -> str:
    """Words for a manifest label of any of the three datasets."""
    from sonic.data.datasets import GREATEST_HITS_MATERIALS, LANDSCAPE_CLASSES, RAVDESS_EMOTIONS

    if label in GREATEST_HITS_MATERIALS:
        return f"a drumstick hitting {label}"
    if label in LANDSCAPE_CLASSES:
        return f"a landscape with {label}"
    if label in RAVDESS_EMOTIONS.values():
        return f"a {label} face singing"
    tags = [t for t in label.split("+") if t]  # Into the Wild: forest+rain, hiking
    if tags == ["hiking"]:
        return "a hiking trail"
    return "a hiking trail with " + " and ".join(tags)


def brightness_word(image: np.ndarray) -> str:
    """Adjective for the mean luminance of an RGB uint8 image."""
    lum = float((image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean() / 255.0)
    word = BRIGHTNESS_WORDS[0][1]
    for threshold, w in BRIGHTNESS_WORDS:
        if lum >= threshold:
            word = w
    return word


def reference_caption(label: str, image: np.ndarray) -> str:
    return f"a {brightness_word(image)} photo of {class_phrase(label)}"
