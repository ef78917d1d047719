"""Stage-1 losses (paper §3.3) on constructed cases with hand-computed values."""

import math

import pytest
import torch

from sonic.training.losses import info_nce_per_token, mse_per_token, pooled_info_nce, stage1_loss, token_weights


def test_token_weights_follow_the_reverse_sigmoid():
    w = token_weights(3, t=5.0)
    expected = [5 / (5 + math.exp(i / 5)) for i in (1, 2, 3)]
    torch.testing.assert_close(w, torch.tensor(expected), rtol=1e-6, atol=0)
    assert torch.all(w[1:] < w[:-1])  # decreasing with the token position
    assert token_weights(77).shape == (77,)
    with pytest.raises(ValueError):
        token_weights(0)


def test_info_nce_on_a_constructed_case():
    # one token, C = 2: cos(anchor, positive) = 1, cos with the negatives 0 and -1; tau = 0.5 -> logits 2, 0, -2
    anchor = torch.tensor([[[1.0, 0.0]]])
    positive = torch.tensor([[[3.0, 0.0]]])  # cosine ignores the norm
    negatives = torch.tensor([[[[0.0, 2.0]], [[-1.0, 0.0]]]])  # (B=1, N=2, K=1, C=2)
    got = info_nce_per_token(anchor, positive, negatives, temperature=0.5)
    expected = math.log(math.exp(2) + math.exp(0) + math.exp(-2)) - 2
    assert got.shape == (1, 1)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_per_token():
    # token 0: the positive matches; token 1: a negative matches -> token 1's loss is the larger one
    anchor = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    positive = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    negatives = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])
    got = info_nce_per_token(anchor, positive, negatives, temperature=1.0)[0]
    assert float(got[0]) == pytest.approx(math.log(math.e + 1) - 1, rel=1e-6)
    assert float(got[1]) == pytest.approx(math.log(1 + math.e), rel=1e-6)


def test_mse_is_the_squared_norm_per_token():
    audio = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    text = torch.zeros(1, 2, 2)
    torch.testing.assert_close(mse_per_token(audio, text), torch.tensor([[5.0, 0.0]]))
    torch.testing.assert_close(mse_per_token(audio, text, "mean"), torch.tensor([[2.5, 0.0]]))
    with pytest.raises(ValueError):
        mse_per_token(audio, text, "max")


def test_pooled_info_nce_equals_the_formula():
    torch.manual_seed(1)
    tokens = torch.randn(7, 4, 8)
    anchors, positives = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 6])
    negatives = torch.tensor([[2, 4], [0, 6], [1, 3]])
    want = info_nce_per_token(tokens[anchors], tokens[positives], tokens[negatives], 0.1)
    torch.testing.assert_close(pooled_info_nce(tokens, anchors, positives, negatives, 0.1), want)


def test_stage1_loss_combines_weighted_terms():
    torch.manual_seed(0)
    tokens, t = torch.randn(9, 4, 8), torch.randn(3, 4, 8)
    a, p, n = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([[6, 7, 8, 4, 5]] * 3)
    w = token_weights(4, 5.0)
    nce = (info_nce_per_token(tokens[a], tokens[p], tokens[n], 0.1) * w).sum(-1).mean()
    mse = (mse_per_token(tokens[a], t, "mean") * w).sum(-1).mean()
    kw = dict(temperature=0.1, token_t=5.0)
    loss, parts = stage1_loss(tokens, a, p, n, t, alpha_contrastive=1.0, alpha_mse=0.25, **kw)
    torch.testing.assert_close(loss, nce + 0.25 * mse)
    assert parts == {"infonce": pytest.approx(float(nce)), "mse": pytest.approx(float(mse))}
    literal, _ = stage1_loss(tokens, a, p, n, t, alpha_contrastive=1.0, alpha_mse=0.25, mse_reduction="sum", **kw)
    torch.testing.assert_close(literal, nce + 0.25 * 8 * mse)  # the squared norm is C times the channel mean
    only_mse, parts = stage1_loss(tokens, a, p, n, t, alpha_contrastive=0.0, alpha_mse=0.25, **kw)
    torch.testing.assert_close(only_mse, 0.25 * mse)
    assert set(parts) == {"mse"}
    only_nce, parts = stage1_loss(tokens, a, p, n, t, alpha_contrastive=1.0, alpha_mse=0.0, **kw)
    torch.testing.assert_close(only_nce, nce)
    assert set(parts) == {"infonce"}
