"""Gated audio cross-attention (paper Eq. 6-9): neutrality, the Eq. 8-9 math, initialisation, gradients."""

import math

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock

from sonic.models.adapters import attach_to_block, detach_from_block
from sonic.models.gated_attention import GatedCrossAttention


def make_block(seed=0, dim=16, heads=2, cross_dim=12):
    torch.manual_seed(seed)
    block = BasicTransformerBlock(dim, heads, dim // heads, cross_attention_dim=cross_dim)
    return block.eval().requires_grad_(False)


def attention(x, ctx, attn, heads):
    """Hand-written multi-head attention with the diffusers Attention module's weights."""
    q, k, v = x @ attn.to_q.weight.T, ctx @ attn.to_k.weight.T, ctx @ attn.to_v.weight.T
    b, n, d = q.shape
    split = lambda t: t.view(b, t.shape[1], heads, d // heads).transpose(1, 2)  # (B, heads, N, d_h)
    q, k, v = split(q), split(k), split(v)
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
    out = (w @ v).transpose(1, 2).reshape(b, n, d)
    return out @ attn.to_out[0].weight.T + attn.to_out[0].bias


def layer_norm(x, norm):
    return torch.nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def test_output_matches_eq_8_9_with_nonzero_gate():
    block = make_block()
    hs, text, audio = torch.randn(2, 6, 16), torch.randn(2, 7, 12), torch.randn(2, 3, 12)
    # Reference taken before installation, with the block's own modules.
    norm1, attn1, norm2, attn2, norm3, ff = block.norm1, block.attn1, block.norm2, block.attn2, block.norm3, block.ff
    gated = attach_to_block(block, "test")
    with torch.no_grad():
        for p in gated.audio.parameters():  # make the audio branch differ from the text branch
            p.add_(0.05 * torch.randn_like(p))
        gated.audio.gamma.fill_(0.7)
        gated.beta = 1.5
        out = block(hs, encoder_hidden_states=text, cross_attention_kwargs={"audio_tokens": audio})

        v = hs + attention(layer_norm(hs, norm1), layer_norm(hs, norm1), attn1, 2)
        v = v + attention(layer_norm(v, norm2), text, attn2, 2)  # Eq. 8
        a = gated.audio
        v = v + 1.5 * math.tanh(0.7) * attention(layer_norm(v, a.norm), audio, a.attn, 2)  # Eq. 9
        ref = v + ff(layer_norm(v, norm3))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_zero_gate_is_bit_identical_and_detach_restores():
    block = make_block(1)
    hs, text, audio = torch.randn(2, 6, 16), torch.randn(2, 7, 12), torch.randn(2, 3, 12)
    base = block(hs, encoder_hidden_states=text)
    attach_to_block(block, "test")
    assert torch.equal(block(hs, encoder_hidden_states=text, cross_attention_kwargs={"audio_tokens": audio}), base)
    assert torch.equal(block(hs, encoder_hidden_states=text), base)  # no audio
    detach_from_block(block)
    assert not isinstance(block.attn2, GatedCrossAttention)
    assert isinstance(block.norm2, torch.nn.LayerNorm)
    assert torch.equal(block(hs, encoder_hidden_states=text), base)


def test_audio_branch_is_a_copy_of_the_text_cross_attention():
    block = make_block(2)
    text_state = {**{f"norm.{k}": v for k, v in block.norm2.state_dict().items()},
                  **{f"attn.{k}": v for k, v in block.attn2.state_dict().items()}}
    gated = attach_to_block(block, "test")
    audio_state = gated.audio.state_dict()
    assert set(audio_state) == set(text_state) | {"gamma"}
    for k, v in text_state.items():
        assert torch.equal(audio_state[k], v), k
        assert audio_state[k].data_ptr() != v.data_ptr(), f"{k} must be a copy, not shared"
    assert gated.audio.gamma.item() == 0.0
    assert all(p.requires_grad for p in gated.audio.parameters())
    assert not any(p.requires_grad for p in gated.text_attn.parameters())


def test_beta_zero_switches_the_audio_branch_off():
    block = make_block(3)
    hs, text, audio = torch.randn(1, 4, 16), torch.randn(1, 7, 12), torch.randn(1, 3, 12)
    base = block(hs, encoder_hidden_states=text)
    gated = attach_to_block(block, "test")
    with torch.no_grad():
        gated.audio.gamma.fill_(1.0)
    kwargs = {"audio_tokens": audio}
    assert not torch.equal(block(hs, encoder_hidden_states=text, cross_attention_kwargs=kwargs), base)
    gated.beta = 0.0
    assert torch.equal(block(hs, encoder_hidden_states=text, cross_attention_kwargs=kwargs), base)


def test_batch_mismatch_is_an_error():
    block = make_block(4)
    attach_to_block(block, "up3")
    with pytest.raises(ValueError, match="up3"):
        block(torch.randn(2, 4, 16), encoder_hidden_states=torch.randn(2, 7, 12),
              cross_attention_kwargs={"audio_tokens": torch.randn(1, 3, 12)})
