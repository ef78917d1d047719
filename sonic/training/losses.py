"""Stage-1 losses of the audio projector (paper Eq. 3-5, supplement Eq. 1-2; paper §3.3).

Every loss is computed per token i = 1..K and summed with the reverse-sigmoid token weights
``w_i = t / (t + exp(i / t))``:

    L = sum_i w_i * (alpha1 * InfoNCE_i + alpha2 * MSE_i)

averaged over the anchors of a batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_weights(num_tokens: int, t: float = 5.0) -> torch.Tensor:
    """Reverse-sigmoid weights ``t / (t + exp(i / t))`` for tokens i = 1..K (supplement Eq. 2), shape (K,)."""
    if num_tokens < 1 or t <= 0:
        raise ValueError(f"token_weights needs num_tokens >= 1 and t > 0, got {num_tokens}, {t}")
    i = torch.arange(1, num_tokens + 1, dtype=torch.float64)
    return (t / (t + torch.exp(i / t))).float()


def info_nce_per_token(
    anchor: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-token InfoNCE with one positive and N negatives (paper Eq. 3), cosine similarity over temperature.

    anchor, positive: (B, K, C); negatives: (B, N, K, C). Returns (B, K):
    ``-log(exp(s(a0_i, a1_i) / tau) / sum_{j in positive + negatives} exp(s(a0_i, a_j,i) / tau))``.
    """
    if temperature <= 0:
        raise ValueError(f"InfoNCE temperature must be > 0, got {temperature}")
    a = F.normalize(anchor.float(), dim=-1)  # (B, K, C)
    candidates = torch.cat([positive[:, None], negatives], dim=1)  # (B, 1 + N, K, C)
    c = F.normalize(candidates.float(), dim=-1)
    logits = torch.einsum("bkc,bjkc->bkj", a, c) / temperature  # (B, K, 1 + N); the positive is j = 0
    return torch.logsumexp(logits, dim=-1) - logits[..., 0]


def mse_per_token(audio_tokens: torch.Tensor, text_tokens: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``||c_audio,i - c_text,i||^2`` per token (paper Eq. 4), (B, K, C) -> (B, K).

    ``reduction="sum"`` is the squared norm as the paper writes it; ``"mean"`` divides by C (a per-channel mean,
    the usual ``nn.MSELoss``), which keeps alpha2's balance independent of the token width.
    """
    sq = (audio_tokens.float() - text_tokens.float()).pow(2)
    if reduction == "sum":
        return sq.sum(-1)
    if reduction == "mean":
        return sq.mean(-1)
    raise ValueError(f"mse reduction must be 'sum' or 'mean', got {reduction!r}")


def pooled_info_nce(tokens: torch.Tensor, anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """:func:`info_nce_per_token` for a batch whose clips were projected once: ``tokens`` (U, K, C) holds each
    distinct clip, ``anchors`` / ``positives`` (B,) and ``negatives`` (B, N) are rows of it. Returns (B, K).

    The cosine similarities are computed between each anchor and the U distinct clips (B x K x U) and then
    gathered, instead of materialising the (B, N, K, C) negatives (about 50x less work at the demo size)."""
    if temperature <= 0:
        raise ValueError(f"InfoNCE temperature must be > 0, got {temperature}")
    z = F.normalize(tokens.float(), dim=-1)  # (U, K, C)
    sim = torch.einsum("bkc,ukc->bku", z[anchors], z)  # (B, K, U)
    candidates = torch.cat([positives[:, None], negatives], dim=1)  # (B, 1 + N); the positive is column 0
    logits = sim.gather(2, candidates[:, None, :].expand(-1, sim.shape[1], -1)) / temperature  # (B, K, 1 + N)
    return torch.logsumexp(logits, dim=-1) - logits[..., 0]


def stage1_loss(
    tokens: torch.Tensor,
    anchors: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    text_tokens: torch.Tensor,
    *,
    temperature: float,
    alpha_contrastive: float,
    alpha_mse: float,
    token_t: float,
    mse_reduction: str = "mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The projector's loss (paper Eq. 5 with the supplement's token weighting), averaged over anchors.

    ``tokens`` (U, K, C): the projector output of each distinct clip of the batch; ``anchors``, ``positives`` (B,)
    and ``negatives`` (B, N) index it; ``text_tokens`` (B, K, C) are the anchors' caption tokens.
    A term whose alpha is 0 is not computed (the ``no_contrastive`` / ``no_mse`` ablations).
    Returns the loss and its (unweighted by alpha) parts as floats for logging.
    """
    weights = token_weights(tokens.shape[1], token_t).to(tokens.device)  # (K,)
    total = tokens.new_zeros((), dtype=torch.float32)
    parts = {}
    if alpha_contrastive:
        nce = (pooled_info_nce(tokens, anchors, positives, negatives, temperature) * weights).sum(-1).mean()
        total = total + alpha_contrastive * nce
        parts["infonce"] = float(nce.detach())
    if alpha_mse:
        mse = (mse_per_token(tokens[anchors], text_tokens, mse_reduction) * weights).sum(-1).mean()
        total = total + alpha_mse * mse
        parts["mse"] = float(mse.detach())
    return total, parts
