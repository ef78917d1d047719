"""SAC's shape classifier (sonic/metrics/shape.py): fitted on a world where every class is both a shape and a
background colour, it recognises the shapes in other colours and cannot tell the colours apart on their own."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from sonic.metrics.shape import ShapeClassifier, feature_dim, shape_features, standardised_luminance

SIZE = 64
CLASSES = ["disc", "stripes", "cross"]
# the world the classifier is fitted on: each class has its own background and shape colour
BACKGROUND = {"disc": (200, 40, 40), "stripes": (40, 170, 60), "cross": (40, 60, 200)}
INK = {"disc": (250, 230, 90), "stripes": (20, 40, 20), "cross": (230, 230, 250)}
YY, XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


def luminance(rgb) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255


def mask(shape: str, rng: np.random.Generator) -> np.ndarray:
    """A (SIZE, SIZE) bool mask of the class's shape at a random position and size."""
    if shape == "disc":
        cx, cy, r = rng.uniform(22, 42), rng.uniform(22, 42), rng.uniform(9, 17)
        return (XX - cx) ** 2 + (YY - cy) ** 2 <= r * r
    if shape == "stripes":
        w, h = rng.uniform(30, 52), rng.uniform(30, 52)
        x0, y0 = rng.uniform(2, SIZE - 2 - w), rng.uniform(2, SIZE - 2 - h)
        period = rng.uniform(7, 12)
        inside = (XX >= x0) & (XX < x0 + w) & (YY >= y0) & (YY < y0 + h)
        return inside & (((YY - y0) % period) < period / 2)
    cx, cy, arm, half = rng.uniform(26, 38), rng.uniform(26, 38), rng.uniform(14, 22), rng.uniform(1.5, 3)
    dx, dy = XX - cx, YY - cy
    near = (np.abs(dx) <= arm) & (np.abs(dy) <= arm)
    return near & ((np.abs(dx - dy) <= half * 1.42) | (np.abs(dx + dy) <= half * 1.42))


def draw(shape: str, background, ink, rng) -> torch.Tensor:
    img = np.empty((SIZE, SIZE, 3))
    img[:] = background
    img[mask(shape, rng)] = ink
    return torch.from_numpy(img / 255).permute(2, 0, 1).float()


def world(per_class: int, seed: int, colours=None) -> tuple[torch.Tensor, list[str]]:
    """``per_class`` images of each class; ``colours(class, k, rng)`` -> (background, ink), default the class's own."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for k in range(per_class):
        for c in CLASSES:
            background, ink = colours(c, k, rng) if colours else (BACKGROUND[c], INK[c])
            images.append(draw(c, background, ink, rng))
            labels.append(c)
    return torch.stack(images), labels


def uniform(rgb, size=SIZE) -> torch.Tensor:
    return (torch.tensor(rgb, dtype=torch.float32) / 255)[:, None, None].expand(3, size, size)


@pytest.fixture(scope="module")
def fitted():
    images, labels = world(24, seed=0)
    return ShapeClassifier.fit(images, labels)


def test_features_are_colour_free():
    """(d) a uniform field of any colour is the zero feature vector; an affine change of the luminance (colour
    balance, brightness, contrast, even inversion) leaves an image's features where they were."""
    fields = torch.stack([uniform(rgb) for rgb in [(255, 0, 0), (0, 255, 0), (10, 10, 10), (255, 255, 255)]])
    feats = shape_features(fields)
    assert feats.shape == (4, feature_dim()) == (4, 1780) and feats.dtype == torch.float32
    assert torch.equal(feats[0], feats[1]) and torch.equal(feats, torch.zeros_like(feats))
    images, _ = world(2, seed=5)
    base = shape_features(images)
    assert base.abs().sum() > 0
    for changed in (0.5 * images + 0.3, 0.2 + 0.6 * images, 1 - images):
        torch.testing.assert_close(shape_features(changed), base, atol=1e-4, rtol=1e-4)
    big = torch.nn.functional.interpolate(images, size=(256, 256), mode="nearest")  # any input size, reduced to 64
    assert shape_features(big).shape == base.shape
    assert standardised_luminance(images).std(dim=(1, 2), unbiased=False).sub(1).abs().max() < 1e-9
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        shape_features(images[:, :1])


def test_recognises_the_shapes_in_other_colours(fitted):
    """(a) each class's shape drawn in colours the classifier never saw with it, including the *other* classes'
    background colours, is recognised."""
    palette = [(128, 128, 128), (240, 220, 60), (120, 40, 140), (60, 200, 210), (20, 20, 20), (250, 250, 250),
               *BACKGROUND.values()]

    def other_colours(c, k, rng):
        while True:
            background, ink = (palette[i] for i in rng.choice(len(palette), 2, replace=False))
            if background != BACKGROUND[c] and abs(luminance(background) - luminance(ink)) > 0.15:
                return background, ink

    images, labels = world(20, seed=1, colours=other_colours)
    assert fitted.accuracy(images, labels) >= 0.9
    on_the_wrong_ground, _ = world(6, seed=2, colours=lambda c, k, rng: (BACKGROUND[CLASSES[CLASSES.index(c) - 1]],
                                                                       (128, 128, 128)))
    assert fitted.predict(on_the_wrong_ground) == CLASSES * 6  # the shape wins over the background colour


def test_colour_alone_is_not_recognised(fitted):
    """(b) a uniform field of each class's colour (the colour and nothing else) gives one and the same prediction:
    the colour cannot select the class."""
    fields = torch.stack([uniform(rgb) for rgb in [*BACKGROUND.values(), *INK.values()]])
    predicted = fitted.predict(fields)
    assert len(set(predicted)) == 1
    labels = list(BACKGROUND) + list(INK)
    assert fitted.accuracy(fields, labels) == pytest.approx(1 / 3)  # 2 of 6 fields: exactly chance


def test_save_and_load_give_the_same_predictions(fitted, tmp_path):
    """(c) through a safetensors file beside other tensors: identical scores; the stored tensors are strict."""
    images, _ = world(5, seed=3)
    tensors = fitted.to_tensors()
    assert set(tensors) == {"shape_mean", "shape_scale", "shape_coef", "shape_intercept", "shape_size"}
    save_file({**tensors, "audio": torch.zeros(2, 3)}, str(tmp_path / "refs.safetensors"))
    loaded = ShapeClassifier.from_tensors(load_file(str(tmp_path / "refs.safetensors")), fitted.labels)
    assert loaded.labels == fitted.labels == sorted(CLASSES) and loaded.size == SIZE
    feats = shape_features(images)
    assert torch.equal(loaded.logits(feats), fitted.logits(feats))
    assert loaded.predict(images) == fitted.predict(images)
    with pytest.raises(ValueError, match="shape_coef"):
        ShapeClassifier.from_tensors({k: v for k, v in tensors.items() if k != "shape_coef"}, fitted.labels)
    with pytest.raises(ValueError, match="disagree"):
        ShapeClassifier.from_tensors(tensors, fitted.labels[:2])


def test_fit_agrees_with_scikit_learn_and_handles_small_cases():
    """Prediction by matrix product equals scikit-learn's; two classes and a class seen once work; one class is an
    error."""
    from sklearn.linear_model import LogisticRegression

    images, labels = world(4, seed=4)
    images, labels = images[:-2], labels[:-2]  # "cross" is seen 3 times, add one seen once below
    images = torch.cat([images, draw("disc", (0, 0, 0), (255, 255, 255), np.random.default_rng(9))[None]])
    labels = labels + ["ring"]
    shape = ShapeClassifier.fit(images, labels)
    assert shape.labels == sorted(set(labels)) and shape.predict(images[-1:]) == ["ring"]
    feats = shape_features(images).double()
    z = ((feats - shape.mean.double()) / shape.scale.double()).numpy()
    reference = LogisticRegression(C=1.0, max_iter=5000).fit(z, labels)
    assert shape.predict(images) == list(reference.predict(z))
    assert ShapeClassifier.fit(images, labels).predict(images) == shape.predict(images)  # deterministic

    pair, pair_labels = world(3, seed=6)
    keep = [i for i, lab in enumerate(pair_labels) if lab != "cross"]
    two = ShapeClassifier.fit(pair[keep], [pair_labels[i] for i in keep])
    assert two.coef.shape == (2, 1780) and two.accuracy(pair[keep], [pair_labels[i] for i in keep]) == 1.0
    with pytest.raises(ValueError, match="at least 2 classes"):
        ShapeClassifier.fit(pair[:2], ["disc", "disc"])
