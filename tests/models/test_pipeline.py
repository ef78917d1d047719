"""Generation (paper §3.6): joint CFG, determinism, controls, save -> load bit-for-bit, from_weights."""

import pytest
import torch

from sonic.models.adapters import install_adapters
from sonic.models.io import load_weights, save_weights
from sonic.models.pipeline import SonicPipeline, interpolate_embeddings
from sonic.models.projector import AudioProjector, ProjectorConfig
from sonic.models.sampling import Conditioning, guided_noise
from sonic.models.registry import StableDiffusion
from tests.tiny import AUDIO_DIM, CROSS_DIM, tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tokenizer


def perturb(projector, adapters, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in list(projector.parameters()) + list(adapters.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for _, m in adapters.modules():
            m.gamma.fill_(0.8)


@pytest.fixture
def pipe(tmp_path):
    tok = write_tokenizer(tmp_path / "tok")
    unet = tiny_unet()
    adapters = install_adapters(unet)
    torch.manual_seed(0)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16)).eval()
    perturb(projector, adapters)
    return SonicPipeline(unet=unet, vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok,
                         scheduler=tiny_scheduler(), projector=projector, adapters=adapters)


def embeds(n=2, seed=0):
    return torch.randn(n, AUDIO_DIM, generator=torch.Generator().manual_seed(seed))


def test_cfg_is_the_joint_standard_form(pipe):
    """One DDIM step of the pipeline's conditioning: eps(null_text, null_audio) + w (eps(text, audio) - that)."""
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    e = embeds()
    text, null_text = pipe.encode_text(["a red cube"]), pipe.encode_text([""])
    uncond, cond = pipe.unconditional(2, null_text), pipe.conditional(e, text)
    assert torch.equal(uncond.audio_tokens, pipe.projector.null_tokens(2))
    assert torch.equal(cond.audio_tokens, pipe.audio_tokens(e))
    got = pipe.denoise(x, uncond, cond, 1, guidance_scale=8.0)
    t = pipe.scheduler.timesteps[0]
    with torch.no_grad():
        eps_c = pipe.unet(x, t, text.expand(2, -1, -1), cross_attention_kwargs={"audio_tokens": cond.audio_tokens})
        eps_u = pipe.unet(x, t, null_text.expand(2, -1, -1),
                          cross_attention_kwargs={"audio_tokens": uncond.audio_tokens})
        expected = pipe.scheduler.step(eps_u.sample + 8.0 * (eps_c.sample - eps_u.sample), t, x).prev_sample
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(guided_noise(torch.zeros(1), torch.ones(1), 8.0), torch.full((1,), 8.0))
    assert isinstance(cond, Conditioning) and len(cond) == 2


def test_same_seed_same_images_and_seeds_differ(pipe):
    kw = dict(seeds=[0, 1], num_inference_steps=3, progress=False)
    a, b = pipe(embeds(), **kw), pipe(embeds(), **kw)
    assert a.shape == (4, 3, 16, 16)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # seeds differ
    assert not torch.equal(a[0], a[2])  # audios differ
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_images_do_not_depend_on_batching(pipe):
    kw = dict(seeds=[3, 4], num_inference_steps=2, progress=False)
    torch.testing.assert_close(pipe(embeds(), batch_size=4, **kw), pipe(embeds(), batch_size=1, **kw),
                               rtol=1e-4, atol=1e-5)


def test_controls_text_beta_interpolation(pipe):
    kw = dict(seeds=[0], num_inference_steps=2, progress=False)
    e = embeds(1)
    base = pipe(e, **kw)
    assert not torch.equal(pipe(e, prompt="a red cube", **kw), base)
    assert not torch.equal(pipe(e, beta={"up3": 0.0}, **kw), base)
    assert pipe.adapters.get_beta()["up3"] == 1.0  # restored after the call
    other = embeds(1, seed=5)
    assert torch.equal(interpolate_embeddings(e, other, 0.0), e)
    assert torch.equal(interpolate_embeddings(e, other, 1.0), other)
    mid = pipe(interpolate_embeddings(e, other, 0.5), **kw)
    assert not torch.equal(mid, base) and not torch.equal(mid, pipe(other, **kw))


def test_beta_zero_equals_the_base_model(pipe):
    """With every gate off, audio only enters through nothing: two different audios give identical images."""
    kw = dict(seeds=[0], num_inference_steps=2, progress=False, beta=0.0)
    assert torch.equal(pipe(embeds(1, 0), **kw), pipe(embeds(1, 7), **kw))


def test_save_load_reproduces_images_bit_for_bit(pipe, tmp_path):
    kw = dict(seeds=[0, 2], num_inference_steps=3, progress=False)
    before = pipe(embeds(), **kw)
    save_weights(tmp_path / "w", pipe.projector, pipe.adapters)
    sd = StableDiffusion(tiny_unet(), pipe.vae, pipe.text_encoder, pipe.tokenizer, tiny_scheduler())
    other = SonicPipeline.from_weights(tmp_path / "w", sd)
    assert torch.equal(other(embeds(), **kw), before)


def test_from_weights_installs_the_layers_into_the_given_sd(pipe, tmp_path):
    save_weights(tmp_path / "w", pipe.projector, pipe.adapters)
    sd = StableDiffusion(tiny_unet(), pipe.vae, pipe.text_encoder, pipe.tokenizer, tiny_scheduler())
    encoder = object()
    loaded = SonicPipeline.from_weights(tmp_path / "w", sd, audio_encoder=encoder)
    assert loaded.unet is sd.unet and loaded.vae is sd.vae and loaded.scheduler is sd.scheduler
    assert loaded.text_encoder is sd.text_encoder and loaded.tokenizer is sd.tokenizer
    assert loaded.audio_encoder is encoder and not loaded.projector.training
    assert loaded.adapters.names == pipe.adapters.names and loaded.adapters.unet is sd.unet


def test_loading_is_strict(pipe, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_weights(tmp_path / "w", pipe.projector, pipe.adapters)
    tensors = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if k != "adapters.mid.gamma"}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="mid.gamma"):
        load_weights(folder, tiny_unet())
    save_file(tensors | {"projector.extra": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="extra"):
        load_weights(folder, tiny_unet())
    save_file(tensors | {"unet.x": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="unet.x"):
        load_weights(folder, tiny_unet())
    with pytest.raises(FileNotFoundError, match="not a SonicDiffusion weights folder"):
        load_weights(tmp_path, tiny_unet())
