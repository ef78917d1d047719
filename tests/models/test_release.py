"""Importing the authors' released weights (sonic.models.release): random state dicts in the released layouts
(names and shapes written from the authors' modules: ``audio_projector_res.Adapter`` and the ``attn_adapter`` /
``norm_adapter`` / ``gate_adapter`` of ``attention_custom.BasicTransformerBlock``), imported, loaded and compared
with a reference forward written from the released definition."""

import json

import pytest
import torch
import torch.nn.functional as F

from sonic.models.adapters import cross_attention_layers
from sonic.models.io import CONFIG_NAME, load_weights
from sonic.models.pipeline import SonicPipeline
from sonic.models.projector import ProjectorConfig, ReleaseProjector, release_token_dim
from sonic.models.release import import_release
from tests.tiny import CROSS_DIM, tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tokenizer

# The released Adapter at test size: audio_token_count K, audio_dim d (its mapper maps d -> C), h heads x dim_head.
K, D, HEADS, DIM_HEAD, BLOCKS = 5, 43, 2, 4, 4
INNER = HEADS * DIM_HEAD
MAPPER = {0: (K, 1, 17), 2: (K, K, 17), 4: (K, D), 5: (K, K, 17), 7: (K, D), 8: (K, K, 17), 10: (K, 3 * D),
          12: (K, K, 17)}  # nn.Sequential index -> weight shape (bias: out channels, or the LayerNorm shape)


def released_projector_state(seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return scale * torch.randn(shape, generator=g)

    state = {}
    for i, shape in MAPPER.items():
        is_norm = i in (4, 7, 10)
        state[f"audio_emb_projection.{i}.weight"] = 1 + rand(*shape, scale=0.05) if is_norm else rand(*shape)
        state[f"audio_emb_projection.{i}.bias"] = rand(*(shape if is_norm else shape[:1]), scale=0.05)
    for b in range(BLOCKS):
        for name in ("to_q_adapter", "to_k_adapter", "to_v_adapter"):
            state[f"cross_attention.{b}.{name}.weight"] = rand(INNER, CROSS_DIM)
        state[f"between_attention.{b}.0.weight"] = rand(INNER, INNER)
        state[f"between_attention.{b}.0.bias"] = rand(INNER)
        state[f"between_attention.{b}.2.weight"] = rand(CROSS_DIM, INNER)
        state[f"between_attention.{b}.2.bias"] = rand(CROSS_DIM)
    state["to_out_adapter.0.weight"] = rand(CROSS_DIM, CROSS_DIM)
    state["to_out_adapter.0.bias"] = rand(CROSS_DIM)
    return state


def reference_projector(state, e):
    """The released Adapter.forward, written from its definition with functional ops."""
    s = lambda i, p: state[f"audio_emb_projection.{i}.{p}"]  # noqa: E731
    x = e[:, None, :]
    x = F.gelu(F.conv1d(x, s(0, "weight"), s(0, "bias"), padding=8))
    x = F.gelu(F.conv1d(x, s(2, "weight"), s(2, "bias"), padding=8))
    x = F.layer_norm(x, [K, D], s(4, "weight"), s(4, "bias"))
    x = F.gelu(F.conv1d(x, s(5, "weight"), s(5, "bias"), padding=8))
    x = F.layer_norm(x, [K, D], s(7, "weight"), s(7, "bias"))
    x = F.gelu(F.conv_transpose1d(x, s(8, "weight"), s(8, "bias"), stride=3, padding=7))
    x = F.gelu(F.layer_norm(x, [K, 3 * D], s(10, "weight"), s(10, "bias")))
    audio_proj = F.conv1d(x, s(12, "weight"), s(12, "bias"), stride=4, padding=7)
    out = None
    for b in range(BLOCKS):
        q, k, v = (audio_proj @ state[f"cross_attention.{b}.to_{n}_adapter.weight"].T for n in "qkv")
        q, k, v = (t.reshape(len(e), K, HEADS, DIM_HEAD).permute(0, 2, 1, 3).reshape(-1, K, DIM_HEAD)
                   for t in (q, k, v))
        attn = (torch.einsum("bid,bjd->bij", q, k) * DIM_HEAD ** -0.5).softmax(-1)
        o = torch.einsum("bij,bjd->bid", attn, v).reshape(len(e), HEADS, K, DIM_HEAD).permute(0, 2, 1, 3)
        o = o.reshape(len(e), K, INNER)
        o = F.linear(F.gelu(F.linear(o, state[f"between_attention.{b}.0.weight"],
                                     state[f"between_attention.{b}.0.bias"])),
                     state[f"between_attention.{b}.2.weight"], state[f"between_attention.{b}.2.bias"])
        out = o + audio_proj  # every block reads audio_proj, as released
    return F.linear(out, state["to_out_adapter.0.weight"], state["to_out_adapter.0.bias"])


RELEASED_BLOCKS = ["mid_block.attentions.0"] + [f"up_blocks.{b}.attentions.{a}" for b in (1, 2, 3) for a in range(3)]


def released_adapters_state(unet, seed=1) -> dict[str, torch.Tensor]:
    """``<block>.transformer_blocks.0.{attn_adapter, norm_adapter, gate_adapter}`` as the authors' block creates
    them: an Attention with the arguments of the block's text cross-attention, a LayerNorm(dim), a gate of shape [1]."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(unet.named_modules())
    state = {}
    for i, path in enumerate(RELEASED_BLOCKS):
        attn2 = modules[path].transformer_blocks[0].attn2
        prefix = f"{path}.transformer_blocks.0."
        for name in ("to_q", "to_k", "to_v"):
            state[prefix + f"attn_adapter.{name}.weight"] = torch.randn(getattr(attn2, name).weight.shape, generator=g)
        state[prefix + "attn_adapter.to_out.0.weight"] = torch.randn(attn2.to_out[0].weight.shape, generator=g)
        state[prefix + "attn_adapter.to_out.0.bias"] = torch.randn(attn2.to_out[0].bias.shape, generator=g)
        dim = attn2.to_q.weight.shape[1]
        state[prefix + "norm_adapter.weight"] = 1 + 0.1 * torch.randn(dim, generator=g)
        state[prefix + "norm_adapter.bias"] = 0.1 * torch.randn(dim, generator=g)
        state[prefix + "gate_adapter"] = torch.tensor([0.1 + 0.05 * i])
    return state


@pytest.fixture
def release_files(tmp_path):
    unet = tiny_unet()
    torch.save(released_projector_state(), tmp_path / "audio_projector_landscape.pth")
    torch.save(released_adapters_state(unet), tmp_path / "landscape.pt")
    return tmp_path / "audio_projector_landscape.pth", tmp_path / "landscape.pt"


def test_release_projector_size_at_paper_scale():
    cfg = ProjectorConfig(audio_dim=1024, num_tokens=77, token_dim=768, num_heads=8, attn_dim=320,
                          architecture="release")
    assert sum(p.numel() for p in ReleaseProjector(cfg).parameters()) == 6_130_050  # the released ~6.13M
    assert release_token_dim(1024) == 768 and release_token_dim(D) == CROSS_DIM
    with pytest.raises(ValueError, match="needs audio_dim 1024"):
        ProjectorConfig(audio_dim=512, token_dim=768, architecture="release")


def test_import_round_trips_and_the_projector_equals_the_released_forward(release_files, tmp_path):
    projector_file, adapters_file = release_files
    out = import_release(projector_file, adapters_file, tmp_path / "weights", heads=HEADS)
    config = json.loads((out / CONFIG_NAME).read_text())
    assert config["projector"]["architecture"] == "release"
    assert config["adapters"]["layers"] == ["mid"] + [f"up{i}" for i in range(3, 12)]

    unet = tiny_unet()
    projector, adapters = load_weights(out, unet)  # strict, as every generation and editing command loads
    assert isinstance(projector, ReleaseProjector)
    released = released_projector_state()
    assert set(projector.state_dict()) == set(released)
    e = F.normalize(torch.randn(3, D, generator=torch.Generator().manual_seed(2)), dim=-1)
    with torch.no_grad():
        torch.testing.assert_close(projector.eval()(e), reference_projector(released, e), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(projector.null_tokens(2), reference_projector(released, torch.zeros(2, D)))

    # the gated layers hold the released tensors, and the released gate is gamma
    state = released_adapters_state(tiny_unet())
    layers = cross_attention_layers(unet)
    paths = {name: path for name, path in zip(["mid"] + [f"up{i}" for i in range(3, 12)], RELEASED_BLOCKS)}
    for name, path in paths.items():
        gated = layers[name].transformer_blocks[0].attn2.audio
        prefix = f"{path}.transformer_blocks.0."
        assert torch.equal(gated.attn.to_k.weight, state[prefix + "attn_adapter.to_k.weight"])
        assert torch.equal(gated.attn.to_out[0].bias, state[prefix + "attn_adapter.to_out.0.bias"])
        assert torch.equal(gated.norm.weight, state[prefix + "norm_adapter.weight"])
        assert gated.gamma.shape == () and float(gated.gamma.detach()) == float(state[prefix + "gate_adapter"][0])
    assert config["metadata"]["gates"]["up3"] == round(float(torch.tanh(torch.tensor(0.15))), 4)


def test_imported_weights_generate_through_the_pipeline(release_files, tmp_path):
    out = import_release(*release_files, tmp_path / "weights", heads=HEADS)
    tok = write_tokenizer(tmp_path / "tok")
    from sonic.models.registry import StableDiffusion

    sd = StableDiffusion(tiny_unet(), tiny_vae(), tiny_text_encoder(len(tok)), tok, tiny_scheduler())
    pipe = SonicPipeline.from_weights(out, sd)
    e = F.normalize(torch.randn(1, D, generator=torch.Generator().manual_seed(3)), dim=-1)
    images = pipe(e, seeds=(0,), num_inference_steps=2, height=16, width=16, progress=False)
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()
    plain = pipe(e, seeds=(0,), num_inference_steps=2, height=16, width=16, beta=0.0, progress=False)
    assert not torch.equal(images, plain)  # the imported gates reach the image


def test_left_over_or_missing_keys_are_errors_listing_them(tmp_path):
    unet = tiny_unet()
    torch.save(released_projector_state(), tmp_path / "p.pth")
    state = released_adapters_state(unet)
    extra = dict(state, **{"up_blocks.1.attentions.0.transformer_blocks.0.attn_adapter.to_q.bias": torch.zeros(1),
                           "conv_in.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="left over") as err:
        import_release(tmp_path / "p.pth", tmp_path / "extra.pt", tmp_path / "w1", heads=HEADS)
    assert "conv_in.weight" in str(err.value) and "attn_adapter.to_q.bias" in str(err.value)

    missing = {k: v for k, v in state.items() if not k.startswith("up_blocks.2.attentions.1.transformer_blocks.0.norm")}
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing \(this project's names\) \['up7.norm.weight', 'up7.norm.bias'\]"):
        import_release(tmp_path / "p.pth", tmp_path / "missing.pt", tmp_path / "w2", heads=HEADS)

    projector = released_projector_state()
    del projector["between_attention.2.0.bias"]
    torch.save(projector, tmp_path / "p_missing.pth")
    torch.save(state, tmp_path / "a.pt")
    with pytest.raises(ValueError, match=r"missing \['between_attention.2.0.bias'\]"):
        import_release(tmp_path / "p_missing.pth", tmp_path / "a.pt", tmp_path / "w3", heads=HEADS)
    assert not (tmp_path / "w3" / CONFIG_NAME).exists()


def test_import_release_command(release_files, tmp_path, capsys):
    from sonic.cli import main

    projector_file, adapters_file = release_files
    rc = main(["import-release", "--projector", str(projector_file), "--adapters", str(adapters_file),
               "--out", str(tmp_path / "w"), "--heads", str(HEADS)])
    assert rc == 0 and (tmp_path / "w" / CONFIG_NAME).is_file()
    meta = json.loads((tmp_path / "w" / CONFIG_NAME).read_text())["metadata"]
    assert meta["release"] is True and len(meta["imported_from"]["projector_sha256"]) == 64


def test_imported_weights_name_their_audio_encoder(release_files, tmp_path):
    """`sonic generate --weights <imported>` encodes audio with Microsoft CLAP 2022 (models.msclap_2022), whatever
    the config's own encoder; without that key it says which key is missing."""
    from sonic import config
    from sonic.models.registry import encoder_config_for

    out = import_release(*release_files, tmp_path / "weights", heads=HEADS)
    base = {"models": {"sd": "sd", "clap": "laion", "msclap_2022": None},
            "audio_encoder": {"kind": "clap", "embed_dim": 24, "sample_rate": 48000}}
    with pytest.raises(config.ConfigError, match="models.msclap_2022 is not set"):
        encoder_config_for(config.from_dict(base, partial=True), out)
    cfg = config.from_dict({**base, "models": {**base["models"], "msclap_2022": "ckpts/CLAP_weights_2022.pth"}},
                           partial=True)
    used = encoder_config_for(cfg, out)
    assert used.models.clap == "ckpts/CLAP_weights_2022.pth"
    assert (used.audio_encoder.kind, used.audio_encoder.embed_dim, used.audio_encoder.sample_rate) == (
        "msclap_2022", 1024, 44100)


def test_the_release_method_loads_as_a_sonic_pipeline_and_is_labelled_in_tables(release_files, tmp_path, sd_folder):
    from sonic import config
    from sonic.evaluation import tables
    from sonic.evaluation.commands import load_generator
    from sonic.methods import RELEASE
    from tests.tiny import tiny_config_dict

    out = import_release(*release_files, tmp_path / "weights", heads=HEADS)
    generator = load_generator(config.from_dict(tiny_config_dict(sd_folder)), RELEASE, out)
    assert isinstance(generator, SonicPipeline) and isinstance(generator.projector, ReleaseProjector)

    files = []
    for name, method in (("a", "SonicDiffusion"), ("b", RELEASE)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps({"dataset": "landscape", "method": method, "AIS": 0.5, "AIC": 0.5,
                                         "IIS": 0.5, "FID": 10.0, "images": 4}))
    tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md")
    md = (tmp_path / "t.md").read_text()
    assert "| landscape | SonicDiffusion (release) | 0.5000 |" in md and "sonic import-release" in md
    assert (tmp_path / "t.csv").read_text().count(RELEASE) == 1  # the CSV keeps the method id
