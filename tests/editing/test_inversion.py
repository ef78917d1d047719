"""DDIM inversion (paper §3.5): exactness, epsilon/v conversion, adapters off, reconstruction error, the cache."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from sonic.editing.inversion import (
    Inversion,
    InversionCache,
    ddim_invert,
    invert,
    model_identity,
    prepare_image,
    reconstruct,
    reconstruction_error,
    to_epsilon,
)
from tests.editing.conftest import make_pipe


class ConstantNoiseUNet(nn.Module):
    """Predicts a fixed epsilon whatever its input, as epsilon or as v = (eps - sqrt(1 - a_t) x_t) / sqrt(a_t).

    DDIM inversion is exact for such a model (the epsilon at x_{t-1} equals the one at x_t), so inversion followed
    by DDIM sampling must give the encoded image back, whichever way the model parametrises its output.
    """

    def __init__(self, scheduler, like):
        super().__init__()
        self.scheduler = scheduler
        self.config = like.config
        self.eps = nn.Parameter(torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)))

    def forward(self, x, t, ctx, cross_attention_kwargs=None):
        eps = self.eps.expand_as(x)
        if self.scheduler.config.prediction_type == "v_prediction":
            a = self.scheduler.alphas_cumprod[int(t)]
            eps = (eps - (1 - a).sqrt() * x) / a.sqrt()
        return SimpleNamespace(sample=eps)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_inversion_is_exact_when_the_noise_estimate_is(tmp_path, source_image, prediction_type):
    pipe = make_pipe(tmp_path, prediction_type)
    pipe.unet = ConstantNoiseUNet(pipe.scheduler, pipe.unet)
    inv = ddim_invert(pipe, source_image, num_inference_steps=6)
    assert inv.latents.shape == (7, 4, 8, 8) and inv.num_steps == 6
    assert not torch.allclose(inv.latents[-1], inv.latents[0], atol=0.1)  # x_T is noisy
    torch.testing.assert_close(reconstruct(pipe, inv)[0], inv.latents[0], rtol=1e-4, atol=1e-4)
    path = reconstruct(pipe, inv, trajectory=True)  # every level, not just the end
    torch.testing.assert_close(path, inv.latents, rtol=1e-4, atol=1e-4)


def test_v_is_converted_to_epsilon(tmp_path):
    pipe = make_pipe(tmp_path, "v_prediction")
    x0, eps, t = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2), torch.tensor(500)
    x_t = pipe.scheduler.add_noise(x0, eps, t)
    v = pipe.scheduler.get_velocity(x0, eps, t)
    torch.testing.assert_close(to_epsilon(pipe.scheduler, v, x_t, t), eps, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_reconstruction_error_is_reported_and_finite(tmp_path, source_image, prediction_type):
    pipe = make_pipe(tmp_path, prediction_type)
    err = reconstruction_error(pipe, ddim_invert(pipe, source_image, num_inference_steps=4))
    assert err["steps"] == 4
    assert all(math.isfinite(err[k]) and err[k] >= 0 for k in ("mse", "psnr", "latent_mse"))
    assert err["psnr"] == pytest.approx(10 * math.log10(1 / err["mse"]))


def test_inversion_runs_with_adapters_off(pipe, source_image):
    """Open gates and a non-default beta change nothing: the gated layers never see audio during inversion."""
    with pipe.beta(2.0):
        with_adapters = ddim_invert(pipe, source_image, 3).latents
    pipe.adapters.remove()
    assert torch.equal(ddim_invert(pipe, source_image, 3).latents, with_adapters)


def test_pil_and_tensor_sources_agree(pipe, source_image):
    as_tensor = torch.from_numpy(np.array(source_image)).permute(2, 0, 1).float() / 255  # (3, H, W)
    assert torch.equal(prepare_image(source_image, (16, 16)), prepare_image(as_tensor, (16, 16)))
    assert prepare_image(source_image, (32, 24)).shape == (1, 3, 32, 24)
    with pytest.raises(ValueError, match="one RGB image"):
        prepare_image(torch.zeros(2, 3, 16, 16), (16, 16))


def test_cache_loads_the_second_time(pipe, source_image, tmp_path):
    cache = InversionCache(tmp_path / "cache", identity="tiny")
    first = invert(pipe, source_image, 3, cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    again = invert(pipe, source_image, 3, cache=InversionCache(tmp_path / "cache", identity="tiny"))
    assert torch.equal(again.latents, first.latents) and torch.equal(again.image, first.image)
    invert(pipe, source_image, 3, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    invert(pipe, source_image, 4, cache=cache)  # other steps: another entry
    invert(pipe, source_image.rotate(90), 3, cache=cache)  # other image: another entry
    assert (cache.hits, cache.misses) == (1, 3)
    assert isinstance(cache.load(cache.key(pipe, prepare_image(source_image, (16, 16)), 3)), Inversion)


def test_model_identity_ignores_adapters_but_not_base_weights(pipe):
    before = model_identity(pipe)
    with torch.no_grad():
        for p in pipe.adapters.parameters():
            p.add_(1.0)
    assert model_identity(pipe) == before
    pipe.adapters.remove()
    assert model_identity(pipe) == before
    assert model_identity(pipe, extra="other location") != before
    with torch.no_grad():
        pipe.unet.conv_in.weight.add_(0.01)
    assert model_identity(pipe) != before
