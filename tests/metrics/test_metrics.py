"""Metrics (docs/evaluation.md): AIS/IIS win rates against a loop reference, strict ties, AIC, FID with custom
features."""

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from torch import nn

from sonic.metrics import (
    ClipImageFeatures,
    aic,
    aic_from_predictions,
    ais,
    ais_from_embeddings,
    ais_per_image,
    fid,
    iis,
    iis_from_embeddings,
    iis_per_image,
    wav2clip_features,
)
from sonic.metrics.clip_scores import image_features, zero_shot
from sonic.models.wav2clip import Wav2Clip, Wav2ClipConfig


# ---------------------------------------------------------------------------------------------------------------
# loop reference of the AIS / IIS ratio, written as the definition reads


def loop_win_ratio(images, positives, references, own_index=None) -> float:
    """For each image: count references (all but its own) with cos(g, own) > cos(g, r); average the ratios."""
    def cos(u, v):
        u, v = u.double(), v.double()
        return float(torch.dot(u / u.norm(), v / v.norm()))

    ratios = []
    for i in range(images.shape[0]):
        own_sim = cos(images[i], positives[i])
        wins, total = 0, 0
        for j in range(references.shape[0]):
            if own_index is not None and j == int(own_index[i]):
                continue
            total += 1
            if own_sim > cos(images[i], references[j]):
                wins += 1
        ratios.append(wins / total)
    return sum(ratios) / len(ratios)


def at_cosine(c: float) -> torch.Tensor:
    """A unit vector at cosine c to e1 = (1, 0, 0)."""
    return torch.tensor([c, math.sqrt(1 - c * c), 0.0], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# AIS / IIS


def test_ais_on_a_constructed_case_is_three_quarters():
    g = torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)  # the norm does not matter: cosine
    a = at_cosine(0.8)
    others = torch.stack([at_cosine(0.5), at_cosine(0.1), at_cosine(-0.3), at_cosine(0.9)])  # beats 3 of 4
    references = torch.cat([others[:2], a[None], others[2:]])  # a's own row is 2
    assert ais_from_embeddings(g, a[None], references, torch.tensor([2])) == 0.75
    assert ais_from_embeddings(g, a[None], others) == 0.75  # the same comparison, own row absent
    # own row counted (own_index None): it ties with itself, which is no win -> 3 / 5
    assert ais_from_embeddings(g, a[None], references) == pytest.approx(0.6)
    # excluding another row instead (the 0.5 one) keeps the self-tie and drops a win: 2 / 4
    assert ais_from_embeddings(g, a[None], references, torch.tensor([0])) == 0.5

def test_ties_are_not_wins():
    g = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    a = at_cosine(0.8)
    beaten = torch.stack([at_cosine(0.5), at_cosine(0.1), at_cosine(-0.3), at_cosine(0.9)])
    assert ais_from_embeddings(g, a[None], beaten) == 0.75
    tied = beaten.clone()
    tied[0] = a  # an exact duplicate of the conditioning audio: the win over 0.5 becomes a tie
    assert ais_from_embeddings(g, a[None], tied) == 0.5
    # the same vector at another norm (cosine unchanged) still ties
    tied[1] = 3 * a
    assert ais_from_embeddings(g, a[None], tied) == 0.25
    # and for IIS, which shares the rule
    assert iis_from_embeddings(g, a[None], tied) == 0.25


def test_duplicates_of_random_positives_tie_as_in_the_loop_reference():
    g = torch.Generator().manual_seed(3)
    images, positives = torch.randn(7, 12, generator=g), torch.randn(7, 12, generator=g)
    references = torch.randn(9, 12, generator=g)
    references[[1, 4, 6]] = positives[[0, 2, 5]]  # exact duplicates of some images' own audio
    own = torch.tensor([8, 8, 8, 7, 7, 7, 0])
    expected = loop_win_ratio(images, positives, references, own)
    assert ais_from_embeddings(images, positives, references, own) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n, r, d, with_own, seed", [
    (1, 2, 3, True, 0), (5, 5, 8, True, 1), (13, 40, 16, True, 2), (13, 40, 16, False, 3), (3, 1, 4, False, 4),
    (30, 7, 512, True, 5), (1500, 20, 4, True, 6),  # 1500 rows run over more than one chunk
])
def test_ais_and_iis_match_the_loop_reference(n, r, d, with_own, seed):
    g = torch.Generator().manual_seed(seed)
    images, positives = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    references = torch.randn(r, d, generator=g)
    own = torch.randint(0, r, (n,), generator=g) if with_own else None
    if n > 100:  # keep the Python loop short: check a subset of rows against the loop, all rows for shape
        per_image = ais_per_image(images, positives, references, own)
        assert per_image.shape == (n,)
        rows = torch.arange(0, n, 97)
        sub_own = own[rows] if own is not None else None
        expected = [loop_win_ratio(images[i:i + 1], positives[i:i + 1], references,
                                   None if sub_own is None else sub_own[k:k + 1]) for k, i in enumerate(rows)]
        assert per_image[rows].tolist() == pytest.approx(expected, abs=1e-12)
        return
    expected = loop_win_ratio(images, positives, references, own)
    assert ais_from_embeddings(images, positives, references, own) == pytest.approx(expected, abs=1e-12)
    assert iis_from_embeddings(images, positives, references, own) == pytest.approx(expected, abs=1e-12)
    per = iis_per_image(images, positives, references, own)
    assert per.shape == (n,) and per.dtype == torch.float64
    assert float(per.mean()) == pytest.approx(expected, abs=1e-12)


def test_win_rate_inputs_are_checked():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError):
        ais_from_embeddings(x, torch.randn(2, 4), torch.randn(5, 4))  # positives for 2 of 3 images
    with pytest.raises(ValueError):
        ais_from_embeddings(x, x, torch.randn(5, 3))  # width mismatch
    with pytest.raises(ValueError):
        ais_from_embeddings(x, x, torch.randn(1, 4), torch.tensor([0, 0, 0]))  # nothing left after exclusion
    with pytest.raises(ValueError):
        ais_from_embeddings(x, x, torch.randn(5, 4), torch.tensor([0, 1, 5]))  # out of range
    with pytest.raises(ValueError):
        ais_from_embeddings(x, x, torch.randn(5, 4), torch.tensor([0.0, 1.0, 2.0]))  # not an index


# ---------------------------------------------------------------------------------------------------------------
# AIC


def test_aic_from_predictions():
    truth = ["dog", "rain", "fire", "dog", "wind"]
    predicted = ["dog", "fire", "fire", "rain", "wind"]
    assert aic_from_predictions(predicted, truth) == 0.6
    assert aic_from_predictions(truth, truth) == 1.0
    with pytest.raises(ValueError):
        aic_from_predictions(predicted[:4], truth)
    with pytest.raises(ValueError):
        aic_from_predictions([], [])


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from sonic.models.registry import Clip
    from tests.tiny import write_clip_folder

    folder = write_clip_folder(tmp_path_factory.mktemp("clip"))
    model = CLIPModel.from_pretrained(folder).eval().requires_grad_(False)
    return Clip(model, CLIPTokenizer.from_pretrained(folder), CLIPImageProcessor.from_pretrained(folder))


def images(n: int, seed: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, 3, 16, 16, generator=g)


def test_aic_end_to_end_with_a_tiny_clip(tiny_clip):
    names = ["dog barking", "rain", "fire crackling"]
    imgs = images(6, seed=0)
    truth = ["rain", "dog barking", "rain", "fire crackling", "rain", "dog barking"]
    first = aic(tiny_clip, imgs, truth, names)
    assert 0.0 <= first <= 1.0 and (first * 6) == round(first * 6)  # k of 6
    assert aic(tiny_clip, imgs, truth, names) == first  # deterministic
    assert first == aic_from_predictions(zero_shot(tiny_clip, imgs, names), truth)
    assert aic(tiny_clip, imgs, zero_shot(tiny_clip, imgs, names), names) == 1.0


def test_ais_and_iis_end_to_end_with_tiny_models(tiny_clip):
    torch.manual_seed(0)
    w2c = Wav2Clip(Wav2ClipConfig(base_width=4, blocks=(1, 1, 1, 1), mlp_hidden=8, embed_dim=16)).eval()
    waves = torch.randn(5, 2000, generator=torch.Generator().manual_seed(1)) * 0.1
    imgs, frames = images(4, seed=2), images(5, seed=3)
    index = torch.tensor([0, 2, 2, 4])

    audio = wav2clip_features(w2c, waves)
    assert audio.shape == (5, 16)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(5))

    got = ais(tiny_clip, w2c, imgs, index, waves)
    img = image_features(tiny_clip, imgs)
    assert got == ais_from_embeddings(img, audio[index], audio, index)
    assert got == pytest.approx(loop_win_ratio(img, audio[index], audio, index), abs=1e-12)
    assert ais(tiny_clip, w2c, imgs, index, waves) == got

    got = iis(tiny_clip, imgs, index, frames)
    ref = image_features(tiny_clip, frames)
    assert got == pytest.approx(loop_win_ratio(img, ref[index], ref, index), abs=1e-12)
    assert 0.0 <= got <= 1.0


# ---------------------------------------------------------------------------------------------------------------
# FID


class PixelProjection(nn.Module):
    """A fixed random linear projection of 4x4-pooled pixels to 8 features."""

    num_features = 8

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(3 * 4 * 4, self.num_features, generator=g))
        self.calls: list[tuple[torch.dtype, float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.dtype, float(x.min()), float(x.max())))
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.weight  # (N, 48) -> (N, 8)


def frechet_reference(f1: np.ndarray, f2: np.ndarray) -> float:
    """The Fréchet distance of two Gaussians fitted to (N, D) features, with scipy's matrix square root."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_fid_with_a_pixel_projection():
    feature = PixelProjection()
    a, b = images(30, seed=0), images(30, seed=1, low=0.3, high=1.0)
    assert abs(fid(a, a, feature)) < 1e-3
    # images reach the module as given: floats in [0, 1], not rescaled to 0..255
    assert all(dtype == torch.float32 and lo >= 0.0 and hi <= 1.0 for dtype, lo, hi in feature.calls)
    with torch.no_grad():
        fa, fb = feature(a).double().numpy(), feature(b).double().numpy()
    different = fid(b, a, feature, batch_size=7)  # batching does not change the statistics
    assert different > 1.0
    assert different == pytest.approx(frechet_reference(fb, fa), rel=1e-4)
    assert fid(a, images(30, seed=2), feature) < different  # another draw of a's distribution is closer


def test_fid_checks_its_images():
    feature = PixelProjection()
    with pytest.raises(ValueError):
        fid(images(4, 0) * 255, images(4, 1), feature)  # not in [0, 1]
    with pytest.raises(ValueError):
        fid(images(1, 0), images(4, 1), feature)  # one image has no covariance
    with pytest.raises(ValueError):
        fid((images(4, 0) * 255).byte(), images(4, 1), feature)  # uint8


def test_fid_with_the_clip_image_tower(tiny_clip):
    feature = ClipImageFeatures(tiny_clip)
    assert feature.num_features == 16
    a, b = images(30, seed=0), images(30, seed=1, low=0.6, high=1.0)
    out = feature(a)
    assert out.shape == (30, 16)
    torch.testing.assert_close(out, feature(a))  # deterministic
    assert abs(fid(a, a, feature)) < 1e-3
    assert fid(b, a, feature) > 1e-2
    unit_features = ClipImageFeatures(tiny_clip, normalize=True)
    torch.testing.assert_close(unit_features(a), image_features(tiny_clip, a))


def test_fid_from_cached_features_equals_fid_on_the_images():
    from sonic.metrics.fid import fid_from_features

    feature = PixelProjection()
    a, b = images(30, seed=0), images(25, seed=1, low=0.3, high=1.0)
    with torch.no_grad():
        fa, fb = feature(a), feature(b)
    assert fid_from_features(fb, fa) == pytest.approx(fid(b, a, feature), rel=1e-6)
    assert abs(fid_from_features(fa, fa)) < 1e-3
    with pytest.raises(ValueError):
        fid_from_features(fa[:1], fa)
    with pytest.raises(ValueError):
        fid_from_features(fa[:, :4], fa)
