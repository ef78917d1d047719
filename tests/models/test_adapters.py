"""Installing adapters into an unmodified diffusers UNet: presets, neutrality, gradients, removal."""

import pytest
import torch

from sonic.models.adapters import PRESETS, cross_attention_layers, find_adapters, install_adapters
from sonic.models.projector import AudioProjector, ProjectorConfig
from tests.tiny import AUDIO_DIM, CROSS_DIM, tiny_unet


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10, 700]), torch.randn(2, 7, CROSS_DIM, generator=g),
            torch.randn(2, 5, CROSS_DIM, generator=g))


def test_layer_numbering_follows_the_paper():
    layers = cross_attention_layers(tiny_unet())
    assert list(layers) == [f"down{i}" for i in range(6)] + ["mid"] + [f"up{i}" for i in range(3, 12)]
    unet = tiny_unet()
    assert layers["up3"] is not None
    assert cross_attention_layers(unet)["up3"] is unet.up_blocks[1].attentions[0]
    assert cross_attention_layers(unet)["up11"] is unet.up_blocks[3].attentions[2]
    assert cross_attention_layers(unet)["down5"] is unet.down_blocks[2].attentions[1]


@pytest.mark.parametrize(("preset", "count"), [("mid_and_decoder", 10), ("decoder_6_11", 6), ("all_layers", 16)])
def test_presets_install_the_expected_layers(preset, count):
    unet = tiny_unet()
    handle = install_adapters(unet, preset)
    assert len(handle.names) == count
    assert handle.names == list(PRESETS[preset])
    assert find_adapters(unet).names == handle.names


def test_explicit_layer_list_and_errors():
    unet = tiny_unet()
    assert install_adapters(unet, ["up4", "mid"]).names == ["up4", "mid"]
    with pytest.raises(RuntimeError, match="already"):
        install_adapters(unet)
    with pytest.raises(ValueError, match="unknown adapter placement"):
        install_adapters(tiny_unet(), "decoder_only")
    with pytest.raises(ValueError, match="up12"):
        install_adapters(tiny_unet(), ["up12"])


def test_zero_gate_unet_is_bit_identical(inputs):
    x, t, text, audio = inputs
    unet = tiny_unet()
    base = unet(x, t, text).sample
    handle = install_adapters(unet, "all_layers")
    assert torch.equal(unet(x, t, text, cross_attention_kwargs={"audio_tokens": audio}).sample, base)
    handle.remove()
    assert find_adapters(unet) is None
    assert torch.equal(unet(x, t, text).sample, base)
    assert set(unet.state_dict()) == set(tiny_unet().state_dict())


def test_open_gates_change_the_output_and_beta_per_layer(inputs):
    x, t, text, audio = inputs
    unet = tiny_unet()
    base = unet(x, t, text).sample
    handle = install_adapters(unet)
    with torch.no_grad():
        for p in handle.parameters():
            p.add_(0.1)
    kwargs = {"audio_tokens": audio}
    full = unet(x, t, text, cross_attention_kwargs=kwargs).sample
    assert not torch.equal(full, base)
    handle.set_beta({"up3": 0.0})
    assert handle.get_beta()["up3"] == 0.0 and handle.get_beta()["mid"] == 1.0
    assert not torch.equal(unet(x, t, text, cross_attention_kwargs=kwargs).sample, full)
    handle.set_beta(0.0)
    assert torch.equal(unet(x, t, text, cross_attention_kwargs=kwargs).sample, base)
    with pytest.raises(ValueError, match="down0"):
        handle.set_beta({"down0": 1.0})


def test_gradients_reach_only_projector_and_adapters(inputs):
    x, t, text, _ = inputs
    unet = tiny_unet()
    handle = install_adapters(unet)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16))
    with torch.no_grad():
        for _, m in handle.modules():
            m.gamma.fill_(0.5)  # open gates so every adapter weight is on the gradient path
    tokens = projector(torch.randn(2, AUDIO_DIM))
    unet(x, t, text, cross_attention_kwargs={"audio_tokens": tokens}).sample.square().mean().backward()
    trainable = {id(p) for p in handle.parameters()} | {id(p) for p in projector.parameters()}
    for name, p in list(unet.named_parameters()) + list(projector.named_parameters()):
        if id(p) in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name


def test_state_dict_round_trip_is_strict():
    unet = tiny_unet()
    handle = install_adapters(unet)
    state = {k: v + 1 for k, v in handle.state_dict().items()}
    other = install_adapters(tiny_unet())
    other.load_state_dict(state)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in state.items())
    missing = dict(state)
    missing.pop("up3.gamma")
    with pytest.raises(ValueError, match="up3.gamma"):
        other.load_state_dict(missing)
    with pytest.raises(ValueError, match="down0.gamma"):
        other.load_state_dict(state | {"down0.gamma": torch.zeros(())})
