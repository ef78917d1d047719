"""AudioToken on tiny models: the loss, the placeholder substitution, what training changes, determinism,
save -> load, and the shared starting noise."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from sonic import competitors

from sonic.models import registry
from sonic.competitors.audiotoken import (LORA_FILE, AudioTokenEmbedder, AudioTokenGenerator, AudioTokenSettings,
                                          EmbedderConfig, add_lora, audiotoken_loss, encode_with_token,
                                          placeholder_ids, remove_lora, token_substitution, train_audiotoken)
from sonic.config import ConfigError
from sonic.models.sampling import initial_latents
from sonic.training.data import load_clip_set
from sonic.training.loop import LoopSettings
from tests.competitors import first_unet_input, make_world
from tests.tiny import AUDIO_DIM, CROSS_DIM, tiny_text_encoder, write_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("audiotoken"))


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
    cfg, files = world
    out = tmp_path_factory.mktemp("at_run")
    summary = competitors.train(cfg, "audiotoken", out=str(out), progress=False, **files)
    return out, summary


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    tok = write_tokenizer(tmp_path_factory.mktemp("tok"))
    return tiny_text_encoder(len(tok)), tok


def test_loss_is_the_diffusion_mse_plus_a_hundredth_of_the_token_l1():
    pred, target = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    tokens = torch.tensor([[1.0, -3.0, 0.0], [2.0, 0.0, -2.0]])
    loss, parts = audiotoken_loss(pred, target, tokens, 0.01)
    mse = (1 + 4 + 0 + 4) / 4
    l1 = (1 + 3 + 0 + 2 + 0 + 2) / 6
    assert parts == pytest.approx({"diffusion": mse, "l1": l1})
    assert float(loss) == pytest.approx(mse + 0.01 * l1)


def test_substitution_replaces_only_the_placeholder_embedding(text):
    encoder, tok = text
    ids, pos = placeholder_ids(tok, "a photo of *", "*")
    assert ids.shape == (1, 77) and ids[0, pos] == tok("*", add_special_tokens=False).input_ids[0]
    token = torch.randn(2, CROSS_DIM)
    captured = []
    embeddings = getattr(encoder, "text_model", encoder).embeddings  # transformers 5 dropped the text_model level
    hook = embeddings.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    plain_states = encoder(ids.expand(2, -1))[0]
    states = encode_with_token(encoder, ids.expand(2, -1), pos, token)
    hook.remove()
    plain_emb, emb = captured
    others = [i for i in range(77) if i != pos]
    assert torch.equal(emb[:, others], plain_emb[:, others])
    position_emb = embeddings.position_embedding.weight[pos]
    torch.testing.assert_close(emb[:, pos], token + position_emb)
    assert torch.equal(states[:, :pos], plain_states[:, :pos])  # causal: nothing before the token sees it
    assert not torch.allclose(states[:, pos:], plain_states[:, pos:])
    assert torch.equal(encoder(ids)[0], plain_states[:1])  # the hook is gone afterwards


def test_substitution_passes_gradients_to_the_token(text):
    encoder, tok = text
    ids, pos = placeholder_ids(tok, "a photo of *", "*")
    token = torch.randn(1, CROSS_DIM, requires_grad=True)
    with token_substitution(encoder, pos, token):
        encoder(ids)[0].sum().backward()
    assert token.grad is not None and token.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_placeholder_must_be_one_token_and_present_once(text):
    _, tok = text
    with pytest.raises(ValueError, match="one token"):
        placeholder_ids(tok, "a photo of sks", "sks")  # the tiny tokenizer splits every word into characters
    with pytest.raises(ValueError, match="exactly once"):
        placeholder_ids(tok, "a photo", "*")
    with pytest.raises(ValueError, match="exactly once"):
        placeholder_ids(tok, "* and *", "*")


def test_training_without_lora_changes_only_the_embedder(world, tmp_path):
    cfg, files = world
    sd = registry.load_stable_diffusion(cfg)
    frozen = {name: {k: v.clone() for k, v in getattr(sd, name).state_dict().items()}
              for name in ("unet", "vae", "text_encoder")}
    clips = load_clip_set(files["manifest"], files["clap"], files["clap_index"])
    s = AudioTokenSettings(steps=2, batch_size=2, hidden_dim=16, lr=1e-2, lora_rank=0)
    summary = train_audiotoken(sd, clips, s, LoopSettings(steps=2, progress=False), tmp_path, 16)
    for name, before in frozen.items():
        after = getattr(sd, name).state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before), name
        assert not any(p.requires_grad for p in getattr(sd, name).parameters()), name
    torch.manual_seed(0)  # the initial embedder, built as train_audiotoken builds it
    init = AudioTokenEmbedder(EmbedderConfig(AUDIO_DIM, CROSS_DIM, 16))
    init.stats.fit(clips.clap)
    init.init_output(sd.text_encoder.get_input_embeddings().weight)
    trained = load_file(str(tmp_path / "weights" / "model.safetensors"))
    assert trained.keys() == {f"embedder.{k}" for k in init.state_dict()}
    changed = {k for k, v in init.state_dict().items() if not torch.equal(v, trained[f"embedder.{k}"])}
    assert changed == {n for n, _ in init.named_parameters()}  # every weight moved; the input statistics did not
    assert summary["trainable_parameters"] == sum(p.numel() for p in init.parameters())
    header = (tmp_path / "losses.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "loss", "diffusion", "l1", "lr"]
    assert (tmp_path / "loss.png").is_file() and (tmp_path / "summary.json").is_file()
    assert not (tmp_path / "weights" / LORA_FILE).exists() and summary["lora_parameters"] == 0


def test_lora_parameters_are_the_only_trainable_unet_parameters_and_removal_restores_the_unet(world):
    cfg, _ = world
    unet = registry.load_stable_diffusion(cfg).unet.requires_grad_(False)
    base = {k: v.clone() for k, v in unet.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, CROSS_DIM, generator=g)
    with torch.no_grad():
        before = unet(x, 10, ctx).sample
    lora = add_lora(unet, 4)
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in unet.named_parameters() if ".lora_" in n} and len(lora) == len(trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} >= {"to_q", "to_k", "to_v", "0"}
    assert all(p.shape[0] == 4 or p.shape[1] == 4 for p in lora)  # rank 4
    with torch.no_grad():
        torch.testing.assert_close(unet(x, 10, ctx).sample, before, rtol=0, atol=0)  # up projections start at 0
        for p in lora:
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        assert not torch.allclose(unet(x, 10, ctx).sample, before)
    unet(x, 10, ctx).sample.square().mean().backward()
    assert all(p.grad is not None for p in lora)
    assert all(p.grad is None for n, p in unet.named_parameters() if ".lora_" not in n)
    remove_lora(unet)
    after = unet.state_dict()
    assert after.keys() == base.keys() and all(torch.equal(after[k], base[k]) for k in base)
    with torch.no_grad():
        assert torch.equal(unet(x, 10, ctx).sample, before)  # bit for bit the base UNet


def test_training_with_lora_saves_it_and_leaves_the_sd_unchanged(world, trained):
    cfg, files = world
    out, summary = trained  # the config's default: LoRA rank 4
    assert summary["lora_parameters"] > 0 and (out / "weights" / LORA_FILE).is_file()
    lora = load_file(str(out / "weights" / LORA_FILE))
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in lora.items())  # it trained
    sd = registry.load_stable_diffusion(cfg)
    base = {k: v.clone() for k, v in sd.unet.state_dict().items()}
    clips = load_clip_set(files["manifest"], files["clap"], files["clap_index"])
    s = AudioTokenSettings(steps=2, batch_size=2, hidden_dim=16, lr=1e-3, lr_scale_by_batch=True,
                           lr_scheduler="constant_with_warmup", lr_warmup_steps=2)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = train_audiotoken(sd, clips, s, LoopSettings(steps=2, progress=False), tmp, 16)
        lrs = [float(line.split(",")[-1]) for line in open(f"{tmp}/losses.csv").read().splitlines()[1:]]
    assert result["lr"] == pytest.approx(2e-3)  # 1e-3 x batch 2
    assert lrs[0] < lrs[1] <= 2e-3  # warm-up
    after = sd.unet.state_dict()
    assert after.keys() == base.keys() and all(torch.equal(after[k], base[k]) for k in base)
    gen = competitors.load_generator(cfg, "audiotoken", out / "weights")
    assert any(".lora_" in n for n, _ in gen.unet.named_parameters())


def test_training_is_deterministic(world, trained, tmp_path):
    cfg, files = world
    out, summary = trained
    assert summary["method"] == "audiotoken" and summary["clips"] == 8 and summary["steps"] == 2
    competitors.train(cfg, "audiotoken", out=str(tmp_path), progress=False, **files)
    a = load_file(str(out / "weights" / "model.safetensors"))
    b = load_file(str(tmp_path / "weights" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_save_load_gives_the_same_images(world, trained):
    cfg, _ = world
    out, _ = trained
    gen = competitors.load_generator(cfg, "audiotoken", out / "weights")
    assert isinstance(gen, AudioTokenGenerator) and gen.template == "a photo of {}" and gen.placeholder == "*"
    embeds = torch.randn(2, AUDIO_DIM, generator=torch.Generator().manual_seed(1))
    images = gen(embeds, seeds=(0, 3), num_inference_steps=2, progress=False)
    assert images.shape == (4, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    again = competitors.load_generator(cfg, "audiotoken", out / "weights")
    assert torch.equal(again(embeds, seeds=(0, 3), num_inference_steps=2, progress=False), images)
    # audio-major order: image 1 is (clip 0, seed 3), image 2 is (clip 1, seed 0)
    single = again(embeds[1:], seeds=(0,), num_inference_steps=2, progress=False)
    torch.testing.assert_close(single[0], images[2])
    with pytest.raises(ValueError, match="placeholder"):
        gen(embeds, prompt="a red square", num_inference_steps=1, progress=False)
    prompted = gen(embeds[:1], prompt="a painting of *", num_inference_steps=2, progress=False)
    assert not torch.equal(prompted[0], images[0])


def test_loading_is_strict(world, trained, tmp_path):
    cfg, _ = world
    out, _ = trained
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "config.json").write_text((out / "weights" / "config.json").read_text())
    tensors = load_file(str(out / "weights" / "model.safetensors"))
    save_file(tensors | {"embedder.extra": torch.zeros(1)}, str(weights / "model.safetensors"))
    with pytest.raises(ValueError, match="extra"):
        competitors.load_generator(cfg, "audiotoken", weights)
    save_file({k: v for k, v in tensors.items() if not k.endswith("net.1.bias")}, str(weights / "model.safetensors"))
    with pytest.raises(ValueError, match="net.1.bias"):
        competitors.load_generator(cfg, "audiotoken", weights)
    save_file(tensors, str(weights / "model.safetensors"))
    with pytest.raises(FileNotFoundError, match=LORA_FILE):
        competitors.load_generator(cfg, "audiotoken", weights)
    lora = load_file(str(out / "weights" / LORA_FILE))
    dropped = sorted(lora)[0]
    save_file({k: v for k, v in lora.items() if k != dropped}, str(weights / LORA_FILE))
    with pytest.raises(ValueError, match="missing"):
        competitors.load_generator(cfg, "audiotoken", weights)


def test_generator_starts_from_the_shared_initial_latents(world, trained):
    cfg, _ = world
    out, _ = trained
    gen = competitors.load_generator(cfg, "audiotoken", out / "weights")
    first = first_unet_input(gen, torch.zeros(1, AUDIO_DIM), seeds=(0, 7), num_inference_steps=1, progress=False)
    expected = torch.stack([initial_latents(s, (4, 8, 8)) for s in (0, 7)]) * gen.scheduler.init_noise_sigma
    assert torch.equal(first, expected)


def test_settings_come_from_the_config(world):
    cfg, _ = world
    assert competitors.settings(cfg, "audiotoken") == AudioTokenSettings(steps=2, batch_size=2, hidden_dim=16)
    defaults = AudioTokenSettings()
    assert (defaults.steps, defaults.batch_size, defaults.lr, defaults.l1_weight) == (200, 16, 1e-3, 0.01)
    bad = cfg.to_dict() | {"competitors": {"audiotoken": {"stepz": 3}}}
    from sonic.config import from_dict

    with pytest.raises(ConfigError, match="stepz"):
        competitors.settings(from_dict(bad), "audiotoken")
    with pytest.raises(ConfigError, match="unknown competitor"):
        competitors.settings(cfg, "codi")
