"""The frozen SD text encoder's prompt states, without the diffusers import (stage 1 and GlueGen need only this)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def encode_prompts(text_encoder, tokenizer, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """SD text-encoder last hidden states (N, 77, C) of ``prompts``, padded to the tokenizer's length as SD pads
    prompts, on the text encoder's device."""
    device = next(text_encoder.parameters()).device
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return torch.cat([text_encoder(chunk.to(device))[0] for chunk in ids.split(batch_size)])
