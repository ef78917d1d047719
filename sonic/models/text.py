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


def char_tokenizer(max_length: int = 77):
    """A CLIP tokenizer whose byte-level vocabulary has no merges (every character a token, ~500 ids): for tests
    and benchmarks on random weights, where the real 49,408-token BPE is not at hand."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = sorted(set(bytes_to_unicode().values()))
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)
