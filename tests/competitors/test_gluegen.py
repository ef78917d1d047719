"""GlueGen on tiny models: the loss and each of its pieces (gradient reversal, discriminator, importance weights,
target normalisation, prompt augmentation), the label targets, what training changes, determinism, save -> load,
and sampling that matches SonicPipeline's (same noise, same guidance, same decoding)."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sonic import competitors
from sonic.competitors.common import TextConditionedGenerator
from sonic.competitors.gluegen import (
    GlueGenGenerator,
    GlueGenModel,
    GlueGenSettings,
    GlueGenTraining,
    LabelPrompts,
    TokenDiscriminator,
    TranslatorConfig,
    adversarial_loss,
    gluegen_loss,
    label_phrases,
    reverse_gradient,
    target_scale,
    token_importance,
    train_gluegen,
)
from sonic.models import registry
from sonic.models.adapters import install_adapters
from sonic.models.pipeline import SonicPipeline
from sonic.models.projector import AudioProjector, ProjectorConfig
from sonic.models.sampling import initial_latents
from sonic.models.text import encode_prompts
from sonic.settings import SYNONYMS, TEMPLATES
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
    summary = competitors.train(cfg, "gluegen", out=str(out), progress=False, **files)
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
    scale = torch.arange(1.0, 6.0)[:, None]  # the translator's output for SD = normalised tokens x token scale
    model.translator.init_output(model.translator.offset.detach().clone(), scale)
    torch.testing.assert_close(model.translator(clap), tokens * scale)


def test_gradient_reversal_is_the_identity_forward_and_negates_backward():
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    g = torch.randn(3, 4)
    (y * g).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * g)
    x.grad = None
    (reverse_gradient(x, 0.0) * g).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(g))


def test_discriminator_is_token_wise_and_the_adversarial_loss_is_both_nlls():
    torch.manual_seed(0)
    disc = TokenDiscriminator(CROSS_DIM)
    assert disc.net[0].out_features == CROSS_DIM // 4 and disc.net[-1].out_features == 2
    assert not list(disc.buffers())  # batch statistics only: no state outside the trained parameters
    real, fake = torch.randn(2, 5, CROSS_DIM), torch.randn(2, 5, CROSS_DIM)
    loss = adversarial_loss(disc, real, fake, 0.1)
    expected = (torch.nn.functional.cross_entropy(disc(real.flatten(0, 1)), torch.zeros(10, dtype=torch.long))
                + torch.nn.functional.cross_entropy(disc(fake.flatten(0, 1)), torch.ones(10, dtype=torch.long)))
    torch.testing.assert_close(loss, expected)
    # the discriminator descends its loss; the tokens get the reversed, lambda-scaled gradient
    fake.requires_grad_(True)
    adversarial_loss(disc, real, fake, 0.1).backward()
    reversed_grad = fake.grad.clone()
    fake.grad = None
    adversarial_loss(disc, real, fake, -1.0).backward()  # -(-1) = 1: the plain gradient
    torch.testing.assert_close(reversed_grad, -0.1 * fake.grad)


def test_importance_weights_on_a_constructed_case():
    states = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [2.0, 2.0], [0.0, 0.0]],
                           [[1.0, 1.0], [1.0, 3.0], [2.0, 0.0], [0.0, 0.0]]])  # (B=2, K=4, C=2)
    # batch mean [[1,1],[2,2],[2,1],[0,0]]; mean |. - last| over C: [1, 2, 1.5, 0]; / 1.125; last = (w2 + w1) / 2
    w = token_importance(states)
    assert w.shape == (1, 4, 1)
    torch.testing.assert_close(w.flatten(), torch.tensor([8 / 9, 16 / 9, 12 / 9, 14 / 9]))
    tokens, targets = torch.zeros(2, 4, 2), torch.ones(2, 4, 2)
    recon = source = torch.zeros(1, 3)
    _, parts = gluegen_loss(tokens, targets, recon, source, token_weights=w)
    assert parts["align"] == pytest.approx(float(w.mean()))


def test_target_normalisation_on_a_constructed_case():
    states = torch.tensor([[[3.0, 4.0], [6.0, 8.0], [1.0, 0.0]],
                           [[0.0, 5.0], [0.0, 2.0], [0.0, 3.0]]])  # (P=2, K=3, C=2), norms [[5, 10, 1], [5, 2, 3]]
    uniform = torch.tensor([0.5, 0.5])
    torch.testing.assert_close(target_scale(states, uniform, 2.0), torch.tensor([[2.5], [3.0], [1.0]]))
    torch.testing.assert_close(target_scale(states, torch.tensor([0.75, 0.25]), 2.0),
                               torch.tensor([[2.5], [4.0], [0.75]]))  # norms weighted as prompts are drawn
    torch.testing.assert_close(target_scale(states, uniform, 1.0), torch.tensor([[5.0], [6.0], [2.0]]))
    assert torch.equal(target_scale(states, uniform, None), torch.ones(3, 1))
    normalised = states / target_scale(states, uniform, 2.0)
    torch.testing.assert_close(normalised.norm(dim=-1).mean(0), torch.full((3,), 2.0))


def test_prompt_augmentation_is_seeded_and_covers_templates_and_synonyms():
    synonyms = {"fire crackling": ("fire crackling", "a crackling fire"), "rain": ("rain", "rainy weather"),
                "forest": ("forest", "woods")}
    bank = LabelPrompts(["fire crackling", "forest+rain", "tile"], TEMPLATES, synonyms)
    labels = ["fire crackling"] * 200 + ["forest+rain"] * 200 + ["tile"] * 50
    a = bank.sample(labels, torch.Generator().manual_seed(3))
    assert a == bank.sample(labels, torch.Generator().manual_seed(3))
    assert a != bank.sample(labels, torch.Generator().manual_seed(4))
    assert set(a) <= set(bank.prompts)
    fire = set(a[:200])
    assert fire == {t.format(p) for t in TEMPLATES for p in synonyms["fire crackling"]}  # every template x phrase
    assert set(a[200:400]) == {t.format(f"{x} and {y}") for t in TEMPLATES for x in ("forest", "woods")
                               for y in ("rain", "rainy weather")}
    assert set(a[400:]) == {t.format("tile") for t in TEMPLATES}  # no synonyms: the label itself
    assert label_phrases("tile", synonyms) == ("tile",) and label_phrases("snow+hiking", synonyms) == ("snow+hiking",)
    assert label_phrases("snow+rain", synonyms) == ("snow and rain", "snow and rainy weather")
    # the duplicated template is drawn twice as often, as in the original list
    freq = bank.frequencies(["tile"])
    assert float(freq.sum()) == pytest.approx(1.0)
    assert float(freq[bank.row["a vivid photo of tile"]]) == pytest.approx(2 / 6)
    assert float(freq[bank.row["a good photo of tile"]]) == pytest.approx(1 / 6)
    # augmentation off: today's single label prompt
    plain = LabelPrompts(["forest+rain", "tile"], ("a photo of {}",), {})
    assert plain.prompts == ["a photo of forest+rain", "a photo of tile"]
    assert plain.sample(["tile", "forest+rain"], torch.Generator().manual_seed(0)) == ["a photo of tile",
                                                                                     "a photo of forest+rain"]


def test_default_settings_are_the_originals():
    s = GlueGenSettings()
    assert s.templates == TEMPLATES and len(s.templates) == 6 and s.synonyms == SYNONYMS
    assert (s.target_norm, s.importance_weights, s.adversarial_weight, s.reversal_lambda) == (2.0, True, 0.1, 0.1)
    assert (s.align_weight, s.recon_weight) == (1e4, 1e4 / 1024)
    for label in ("fire crackling", "plastic-bag", "happy", "forest"):
        assert len(label_phrases(label, s.synonyms)) > 1
    assert len(label_phrases("forest+rain", s.synonyms)) == len(SYNONYMS["forest"]) * len(SYNONYMS["rain"])
    from_yaml = GlueGenSettings(templates=["a {}"], synonyms={"red": ["red", "crimson"]})
    assert from_yaml.templates == ("a {}",) and from_yaml.synonyms == {"red": ("red", "crimson")}
    assert GlueGenSettings(template="a photo of {}") == GlueGenSettings(templates=["a photo of {}"])
    with pytest.raises(ValueError, match="not both"):
        GlueGenSettings(template="a photo of {}", templates=["a {}"])
    with pytest.raises(ValueError, match="templates"):
        GlueGenSettings(templates=["no placeholder"])
    with pytest.raises(ValueError, match="synonyms"):
        GlueGenSettings(synonyms={"red": []})
    with pytest.raises(ValueError, match="target_norm"):
        GlueGenSettings(target_norm=0.0)


ALL_OFF = dict(templates=("a photo of {}",), synonyms={}, target_norm=None, importance_weights=False,
               adversarial_weight=0.0, align_weight=1.0, recon_weight=1.0)


def _batch(num_tokens=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = GlueGenModel(TranslatorConfig(AUDIO_DIM, CROSS_DIM, num_tokens=num_tokens, hidden_dim=16, num_heads=2,
                                          num_layers=1))
    clap, states = torch.randn(4, AUDIO_DIM, generator=g), 3 * torch.randn(4, num_tokens, CROSS_DIM, generator=g)
    model.translator.stats.fit(clap)
    return model, clap, states


def test_all_pieces_off_is_the_plain_loss():
    model, clap, states = _batch()
    training = GlueGenTraining(model, GlueGenSettings(**ALL_OFF))
    assert training.discriminator is None
    loss, parts = training(clap, states)
    tokens, recon, source = model(clap)
    plain = torch.nn.functional.mse_loss(tokens, states) + torch.nn.functional.mse_loss(recon, source)
    assert parts.keys() == {"align", "recon"}
    torch.testing.assert_close(loss, plain)
    # each piece on changes the loss, and only its own part
    for key, value in [("target_norm", 2.0), ("importance_weights", True), ("adversarial_weight", 0.1)]:
        model.translator.token_scale.fill_(0.5 if key == "target_norm" else 1.0)
        torch.manual_seed(1)
        loss_on, parts_on = GlueGenTraining(model, GlueGenSettings(**ALL_OFF | {key: value}))(clap, states)
        assert float(loss_on.detach()) != pytest.approx(float(plain.detach())), key
        assert parts_on["recon"] == pytest.approx(parts["recon"])
    model.translator.token_scale.fill_(1.0)


def test_the_adversary_changes_the_translators_gradient_direction():
    model, clap, states = _batch()
    settings = dict(ALL_OFF, adversarial_weight=1.0, reversal_lambda=1.0)
    grads = {}
    for name, s in [("off", ALL_OFF), ("on", settings)]:
        torch.manual_seed(2)
        training = GlueGenTraining(copy.deepcopy(model), GlueGenSettings(**s))
        loss, parts = training(clap, states)
        loss.backward()
        grads[name] = torch.cat([p.grad.flatten() for p in training.model.translator.parameters()
                                 if p.grad is not None])
        if name == "on":
            assert "adv" in parts
            disc_grads = [p.grad for p in training.discriminator.parameters()]
            assert all(g is not None and g.abs().sum() > 0 for g in disc_grads)
    cos = torch.nn.functional.cosine_similarity(grads["on"], grads["off"], dim=0)
    assert float(cos) < 0.999


def test_training_runs_with_every_piece_and_logs_each_part(trained):
    out, summary = trained
    header = (out / "losses.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "loss", "align", "recon", "adv", "align_text", "lr"]
    assert summary["discriminator_parameters"] > 0 and summary["prompts"] == 3 * 5  # 3 labels x 5 distinct templates
    config = json.loads((out / "weights" / "config.json").read_text())["config"]
    assert config["target_norm"] == 2.0 and config["templates"] == list(TEMPLATES)
    tensors = load_file(str(out / "weights" / "model.safetensors"))
    assert not any(k.startswith("discriminator") for k in tensors)  # training-only
    assert tensors["translator.token_scale"].shape == (77, 1) and not torch.equal(
        tensors["translator.token_scale"], torch.ones(77, 1))


def test_targets_are_the_label_prompt_states(world):
    cfg, _ = world
    encoder, tok = registry.load_text_encoder(cfg)
    bank = LabelPrompts(["red", "blue", "red"], ("a photo of {}",), {})
    states = encode_prompts(encoder, tok, bank.prompts)
    drawn = bank.sample(["red", "blue", "red"], torch.Generator().manual_seed(0))
    expected = encode_prompts(encoder, tok, ["a photo of red", "a photo of blue", "a photo of red"])
    assert states.shape == (2, 77, CROSS_DIM)
    torch.testing.assert_close(states[[bank.row[p] for p in drawn]], expected)


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
    bank = LabelPrompts(clips.labels, s.templates, s.synonyms)
    states = encode_prompts(encoder, tok, bank.prompts)
    freq = bank.frequencies(clips.labels)
    scale = target_scale(states, freq, s.target_norm)
    torch.manual_seed(0)  # the initial model, built as train_gluegen builds it
    init = GlueGenModel(TranslatorConfig(AUDIO_DIM, CROSS_DIM, 77, 16, 1, 2))
    init.translator.stats.fit(clips.clap)
    init.translator.init_output((freq[:, None, None] * states.double()).sum(0).float() / scale, scale)
    trained = load_file(str(tmp_path / "weights" / "model.safetensors"))
    state = {f"translator.{k}": v for k, v in init.translator.state_dict().items()}
    state |= {f"reverse.{k}": v for k, v in init.reverse.state_dict().items()}
    assert trained.keys() == state.keys()
    changed = {k for k, v in state.items() if not torch.equal(v, trained[k])}
    assert changed == {k for k in state if not k.startswith(("translator.stats.", "translator.token_scale"))}
    rows = (tmp_path / "losses.csv").read_text().splitlines()
    assert rows[0].split(",") == ["step", "loss", "align", "recon", "adv", "align_text", "lr"]
    for column in (1, rows[0].split(",").index("align_text")):  # the loss, and the plain text-space MSE
        first, last = float(rows[1].split(",")[column]), float(rows[-1].split(",")[column])
        assert last < first
    disc = sum(p.numel() for p in TokenDiscriminator(CROSS_DIM).parameters())
    assert summary["classes"] == 3 and summary["discriminator_parameters"] == disc
    assert summary["trainable_parameters"] == sum(p.numel() for p in init.parameters()) + disc


def test_training_is_deterministic(world, trained, tmp_path):
    cfg, files = world
    out, summary = trained
    assert summary["method"] == "gluegen" and summary["steps"] == 3
    assert (out / "loss.png").is_file() and (out / "summary.json").is_file() and (out / "checkpoint-3").is_dir()
    competitors.train(cfg, "gluegen", out=str(tmp_path), progress=False, **files)
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
    with pytest.raises(ValueError, match="proj_out.bias"):
        competitors.load_generator(cfg, "gluegen", tmp_path)
    with pytest.raises(ValueError, match="sonic-gluegen"):
        competitors.load_generator(cfg, "audiotoken", out / "weights")
    # weights written before the translator carried its target scale: a clear error, not a silent unit scale
    old = json.loads((out / "weights" / "config.json").read_text())
    del old["config"]["target_norm"]
    (tmp_path / "config.json").write_text(json.dumps(old))
    save_file({k: v for k, v in tensors.items() if k != "translator.token_scale"}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="before target normalisation"):
        competitors.load_generator(cfg, "gluegen", tmp_path)


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
    ours = EmptyPrompt.from_sd(sd)
    embeds = torch.randn(3, AUDIO_DIM)
    kwargs = dict(seeds=(0, 2), num_inference_steps=3, guidance_scale=8.0, batch_size=4, progress=False)
    images = ours(embeds, **kwargs)
    torch.manual_seed(0)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16))
    adapters = install_adapters(sd.unet, "mid_and_decoder")  # gates 0: the base UNet exactly
    pipe = SonicPipeline.from_sd(sd, projector=projector, adapters=adapters)
    assert torch.equal(first_unet_input(pipe, embeds, **kwargs), first_unet_input(ours, embeds, **kwargs))
    torch.testing.assert_close(pipe(embeds, **kwargs), images, rtol=0, atol=1e-6)
    latents = torch.randn(2, 4, 8, 8)
    assert torch.equal(ours.decode(latents), pipe.decode(latents))
    adapters.remove()


def test_kill_and_resume_matches_an_uninterrupted_run(world, tmp_path, monkeypatch):
    from sonic.training import loop

    cfg, files = world
    competitors.train(cfg, "gluegen", out=str(tmp_path / "straight"), progress=False, **files)
    real = loop.step_generator

    def dies_at_3(seed, step, process=0):
        if step == 3:
            raise KeyboardInterrupt
        return real(seed, step, process)

    monkeypatch.setattr(loop, "step_generator", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        competitors.train(cfg, "gluegen", out=str(tmp_path / "killed"), progress=False, **files)
    monkeypatch.setattr(loop, "step_generator", real)
    summary = competitors.train(cfg, "gluegen", out=str(tmp_path / "killed"), progress=False, **files)
    assert summary["resumed_from"] == 2
    a = load_file(str(tmp_path / "straight" / "weights" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "weights" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
