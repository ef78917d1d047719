"""Audio projector (paper Fig. 4, supp. §1.3): shapes, K=1, chained attention blocks, null audio, parameter budget."""

import pytest
import torch

from sonic.models.projector import AudioProjector, ProjectorConfig


def small(**kw):
    torch.manual_seed(0)
    return AudioProjector(ProjectorConfig(**({"audio_dim": 24, "num_tokens": 5, "token_dim": 32, "num_heads": 2,
                                              "attn_dim": 16} | kw)))


def test_shapes_and_single_token():
    assert small()(torch.randn(3, 24)).shape == (3, 5, 32)
    assert small(num_tokens=1)(torch.randn(3, 24)).shape == (3, 1, 32)


def test_tokens_differ_and_depend_on_the_embedding():
    p = small()
    a, b = torch.randn(1, 24), torch.randn(1, 24)
    out = p(a)
    assert not torch.allclose(out[0, 0], out[0, 1])
    assert not torch.allclose(p(a), p(b))


def test_every_attention_block_reaches_the_output():
    """Guards against the released code's bug where only the last of the four blocks reached the output."""
    p = small()
    x = torch.randn(2, 24)
    base = p(x)
    assert len(p.blocks) == 4
    for block in p.blocks:
        with torch.no_grad():
            saved = block.to_out.weight.clone()
            block.to_out.weight.add_(0.5)
            changed = p(x)
            block.to_out.weight.copy_(saved)
        assert not torch.allclose(changed, base)


def test_null_tokens_are_the_projection_of_zeros():
    p = small()
    assert torch.equal(p.null_tokens(2), p(torch.zeros(2, 24)))


def test_paper_size_is_about_8m_parameters():
    with torch.device("meta"):
        p = AudioProjector(ProjectorConfig())
    n = sum(q.numel() for q in p.parameters())
    assert 5e6 <= n <= 10e6


def test_bad_input_and_config_are_errors():
    with pytest.raises(ValueError, match="24"):
        small()(torch.randn(2, 25))
    with pytest.raises(ValueError, match="divisible"):
        ProjectorConfig(attn_dim=10, num_heads=3)
