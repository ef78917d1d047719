"""Gated audio cross-attention (paper Eq. 8-9, Fig. 5; supp. §1.4).

Inside one transformer block of the frozen UNet, after the text cross-attention residual and before the
feed-forward:

    v = v + CrossAttn_text(norm2(v), c_text)                                  # Eq. 8, frozen
    v = v + beta * tanh(gamma) * CrossAttn_audio(norm_a(v), c_audio)          # Eq. 9, new

:class:`GatedCrossAttention` takes the place of the block's ``attn2`` and owns its ``norm2`` (the block's
``norm2`` becomes an ``nn.Identity``), so the block hands it the un-normalised ``v`` and adds the returned
value back as its own residual. The audio branch is a separate :class:`AudioCrossAttention` module, the
only trainable part. Audio tokens arrive by name, as ``cross_attention_kwargs={"audio_tokens": ...}``.
"""

from __future__ import annotations

import copy

import torch
from diffusers.models.attention_processor import Attention
from torch import nn


class AudioCrossAttention(nn.Module):
    """The new, trainable part of one layer: LayerNorm, Q/K/V/out projections and the gate gamma."""

    def __init__(self, text_norm: nn.LayerNorm, text_attn: Attention):
        super().__init__()
        # Initialised by copying the text cross-attention of the same block (paper Eq. 6-9).
        self.norm = copy.deepcopy(text_norm)
        self.attn = copy.deepcopy(text_attn)
        self.gamma = nn.Parameter(torch.zeros(()))
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, hidden_states: torch.Tensor, audio_tokens: torch.Tensor, beta: float) -> torch.Tensor:
        out = self.attn(self.norm(hidden_states), encoder_hidden_states=audio_tokens)
        return (beta * torch.tanh(self.gamma)) * out


class GatedCrossAttention(nn.Module):
    """Replaces ``block.attn2``: returns the text cross-attention output plus the gated audio term."""

    def __init__(self, text_norm: nn.Module, text_attn: Attention, name: str):
        super().__init__()
        self.name = name
        self.text_norm = text_norm  # the block's original norm2 (frozen, moved here)
        self.text_attn = text_attn  # the block's original attn2 (frozen, moved here)
        self.audio = AudioCrossAttention(text_norm, text_attn)
        self.beta = 1.0  # inference-time strength, settable per layer

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        audio_tokens: torch.Tensor | None = None,
        **cross_attention_kwargs,
    ) -> torch.Tensor:
        text_out = self.text_attn(
            self.text_norm(hidden_states),
            encoder_hidden_states=encoder_hidden_states,
            attention_mask=attention_mask,
            **cross_attention_kwargs,
        )
        if audio_tokens is None or self.beta == 0:
            return text_out
        if audio_tokens.shape[0] != hidden_states.shape[0]:
            raise ValueError(
                f"{self.name}: audio_tokens batch {audio_tokens.shape[0]} != hidden states batch {hidden_states.shape[0]}"
            )
        v = hidden_states + text_out  # the block's state after the text residual (Eq. 8)
        # The block adds `hidden_states` back, giving v + gated audio term (Eq. 9).
        return text_out + self.audio(v, audio_tokens.to(v.dtype), self.beta)
