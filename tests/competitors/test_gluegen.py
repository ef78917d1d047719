"""GlueGen on tiny models: the loss, the label targets, what training changes, determinism, save -> load, and
sampling that matches SonicPipeline's (same noise, same guidance, same decoding)."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from sonic import competitors, registry
from sonic.competitors.common import TextConditionedGenerator
from sonic.competitors.gluegen import (GlueGenGenerator, GlueGenModel, GlueGenSettings, TranslatorConfig,
                                       gluegen_loss, label_states, train_gluegen)
from sonic.models.adapters import install_adapters
from sonic.models.pipeline import SonicPipeline, encode_prompts, initial_latents
from sonic.models.projector import AudioProjector, ProjectorConfig
from sonic.training.data import load_clip_set
from sonic.training.loop import LoopSettings
from tests.competitors import first_unet_input, make_world
from tests.tiny import AUDIO_DIM, CROSS_DIM


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("gluegen"))


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    cfg, files = world
    out = tmp_path_factory.mktemp("gg_run")
    summary = competitors.train(cfg, "gluegen", captions=None, out=str(out), progress=False, **files)
    return out, summary


def test_loss_is_weighted_alignment_plus_reconstruction():
    tokens = torch.tensor([[[1.0, 0.0], [2.0, 2.0]]])  # (1, K=2, C=2)
    targets = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    recon, source = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[1.0, -1.0, 4.0]])
    align, rec = (1 + 0 + 0 + 4) / 4, (0 + 4 + 9) / 3
    loss, parts = gluegen_loss(tokens, targets, recon, source)
    assert parts == pytest.approx({"align": align, "recon": rec}) and float(loss) == pytest.approx(align + rec)
    loss, _ = gluegen_loss(tokens, targets, recon, source, align_weight=2.0, recon_weight=0.5)
    assert float(loss) == pytest.approx(2 * align + 0.5 * rec)


def test_model_reconstructs_its_standardised_input():
    model = GlueGenModel(TranslatorConfig(AUDIO_DIM, CROSS_DIM, num_tokens=5, hidden_dim=16, num_heads=2))
    clap = torch.randn(6, AUDIO_DIM)
    model.translator.stats.fit(clap)
    tokens, recon, source = model(clap)
    assert tokens.shape == (6, 5, CROSS_DIM) and recon.shape == source.shape == (6, AUDIO_DIM)
    torch.testing.assert_close(source, (clap - clap.mean(0)) / clap.std(0))
    torch.testing.assert_close(recon, model.reverse(tokens))


def test_targets_are_the_label_prompt_states(world):
    cfg, _ = world
    encoder, tok = registry.load_text_encoder(cfg)
    targets = label_states(encoder, tok, ["red", "blue", "red"], "a photo of {}")
    expected = encode_prompts(encoder, tok, ["a photo of red", "a photo of blue", "a photo of red"])
    assert targets.shape == (3, 77, CROSS_DIM)
    torch.testing.assert_close(targets, expected)


def test_prompt_states_carry_no_graph_even_from_a_trainable_encoder(world):
    """encode_prompts runs without autograd: targets and conditions never drag the text encoder into a backward."""
    cfg, _ = world
    encoder, tok = registry.load_text_encoder(cfg)
    encoder.requires_grad_(True)
    assert not encode_prompts(encoder, tok, ["a photo of red"]).requires_grad


def test_training_changes_only_the_translators_and_lowers_the_loss(world, tmp_path):
    cfg, files = world
    encoder, tok = registry.load_text_encoder(cfg)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    clips = load_clip_set(files["manifest"], files["clap"], files["clap_index"])
    s = GlueGenSettings(steps=30, batch_size=8, hidden_dim=16, num_heads=2, num_layers=1, lr=3e-3)
    summary = train_gluegen(encoder, tok, clips, s, LoopSettings(steps=30, checkpoint_every=10, progress=False),
                            tmp_path)
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())
    assert not any(p.requires_grad for p in encoder.parameters())
    torch.manual_seed(0)  # the initial model, built as train_gluegen builds it
    init = GlueGenModel(TranslatorConfig(AUDIO_DIM, CROSS_DIM, 77, 16, 1, 2))
    init.translator.stats.fit(clips.clap)
    init.translator.init_output(label_states(encoder, tok, clips.labels, s.template).mean(0))
    trained = load_file(str(tmp_path / "weights" / "model.safetensors"))
    state = {f"translator.{k}": v for k, v in init.translator.state_dict().items()}
    state |= {f"reverse.{k}": v for k, v in init.reverse.state_dict().items()}
    assert trained.keys() == state.keys()
    changed = {k for k, v in state.items() if not torch.equal(v, trained[k])}
    assert changed == {k for k in state if not k.startswith("translator.stats.")}
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    assert rows[0].split(",") == ["step", "loss", "align", "recon", "lr"]
    first, last = float(rows[1].split(",")[1]), float(rows[-1].split(",")[1])
    assert last < first
    assert summary["classes"] == 3 and summary["trainable_parameters"] == sum(p.numel() for p in init.parameters())


def test_training_is_deterministic(world, trained, tmp_path):
    cfg, files = world
    out, summary = trained
    assert summary["method"] == "gluegen" and summary["steps"] == 3
    assert (out / "loss.png").is_file() and (out / "summary.json").is_file() and (out / "checkpoint-3").is_dir()
    competitors.train(cfg, "gluegen", captions=None, out=str(tmp_path), progress=False, **files)
    a = load_file(str(out / "weights" / "model.safetensors"))
    b = load_file(str(tmp_path / "weights" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_save_load_gives_the_same_images(world, trained, tmp_path):
    cfg, _ = world
    out, _ = trained
    gen = competitors.load_generator(cfg, "gluegen", out / "weights")
    assert isinstance(gen, GlueGenGenerator)
    embeds = torch.randn(2, AUDIO_DIM, generator=torch.Generator().manual_seed(1))
    images = gen(embeds, seeds=(0, 3), num_inference_steps=2, progress=False)
    assert images.shape == (4, 3, 16, 16)
    again = competitors.load_generator(cfg, "gluegen", out / "weights")
    assert torch.equal(again(embeds, seeds=(0, 3), num_inference_steps=2, progress=False), images)
    with pytest.raises(ValueError, match="no text prompt"):
        gen(embeds, prompt="a red square", num_inference_steps=1, progress=False)
    # strict loading
    (tmp_path / "config.json").write_text((out / "weights" / "config.json").read_text())
    tensors = load_file(str(out / "weights" / "model.safetensors"))
    save_file({k: v for k, v in tensors.items() if k != "reverse.proj_out.bias"}, str(tmp_path / "model.safetensors"))
    with pytest.raises(KeyError, match="proj_out.bias"):
        competitors.load_generator(cfg, "gluegen", tmp_path)
    with pytest.raises(ValueError, match="sonic-gluegen"):
        competitors.load_generator(cfg, "audiotoken", out / "weights")


def test_generator_starts_from_the_shared_initial_latents(world, trained):
    cfg, _ = world
    out, _ = trained
    gen = competitors.load_generator(cfg, "gluegen", out / "weights")
    first = first_unet_input(gen, torch.zeros(2, AUDIO_DIM), seeds=(5,), num_inference_steps=1, progress=False)
    expected = torch.stack([initial_latents(5, (4, 8, 8))] * 2) * gen.scheduler.init_noise_sigma
    assert torch.equal(first, expected)


class EmptyPrompt(TextConditionedGenerator):
    """A competitor whose audio condition is the empty prompt: it must sample exactly what a neutral SonicPipeline
    (gates 0, no prompt) samples."""

    def conditions(self, audio_embeds, prompt):
        return encode_prompts(self.text_encoder, self.tokenizer, [""]).expand(len(audio_embeds), -1, -1)


def test_sampling_matches_sonic_pipeline(world):
    cfg, _ = world
    sd = registry.load_stable_diffusion(cfg)
    ours = EmptyPrompt(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler)
    embeds = torch.randn(3, AUDIO_DIM)
    kwargs = dict(seeds=(0, 2), num_inference_steps=3, guidance_scale=8.0, batch_size=4, progress=False)
    images = ours(embeds, **kwargs)
    torch.manual_seed(0)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16))
    adapters = install_adapters(sd.unet, "mid_and_decoder")  # gates 0: the base UNet exactly
    pipe = SonicPipeline(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, projector, adapters)
    assert torch.equal(first_unet_input(pipe, embeds, **kwargs), first_unet_input(ours, embeds, **kwargs))
    torch.testing.assert_close(pipe(embeds, **kwargs), images, rtol=0, atol=1e-6)
    latents = torch.randn(2, 4, 8, 8)
    assert torch.equal(ours.decode(latents), pipe.decode(latents))
    adapters.remove()


def test_kill_and_resume_matches_an_uninterrupted_run(world, tmp_path, monkeypatch):
    from sonic.training import loop

    cfg, files = world
    competitors.train(cfg, "gluegen", captions=None, out=str(tmp_path / "straight"), progress=False, **files)
    real = loop.step_generator

    def dies_at_3(seed, step, process=0):
        if step == 3:
            raise KeyboardInterrupt
        return real(seed, step, process)

    monkeypatch.setattr(loop, "step_generator", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        competitors.train(cfg, "gluegen", captions=None, out=str(tmp_path / "killed"), progress=False, **files)
    monkeypatch.setattr(loop, "step_generator", real)
    summary = competitors.train(cfg, "gluegen", captions=None, out=str(tmp_path / "killed"), progress=False, **files)
    assert summary["resumed_from"] == 2
    a = load_file(str(tmp_path / "straight" / "weights" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "weights" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
