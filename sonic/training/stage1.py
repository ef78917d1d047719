"""Stage 1 — projector alignment (paper §3.3, supplement §1.3).

Only the audio projector trains. Each step draws anchors, same-class positives and other-class negatives
(:class:`~sonic.training.sampler.ContrastiveSampler`), projects every distinct clip of the batch once and
minimises ``sum_i w_i (alpha1 InfoNCE_i + alpha2 MSE_i)`` against the SD text-encoder tokens of the anchor's
BLIP-2 caption. AdamW, lr 1e-4, weight decay 1e-2, constant learning rate (the paper names no schedule).

Caption tokens: the text encoder runs once per distinct caption when the run starts; no caption cache file is
written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from sonic.models.io import save_projector
from sonic.models.projector import ProjectorConfig, build_projector
from sonic.models.text import encode_prompts
from sonic.settings import Stage1Settings
from sonic.training import loop
from sonic.training.data import ClipSet
from sonic.training.losses import stage1_loss
from sonic.training.sampler import ContrastiveSampler

log = logging.getLogger(__name__)


def text_targets(text_states: torch.Tensor, input_ids: torch.Tensor, eos_token_id: int, num_tokens: int
                 ) -> torch.Tensor:
    """The text tokens the K audio tokens are compared with: all 77 when K equals the text length, the first K
    otherwise, except K = 1, which takes the end-of-text token (CLIP's pooled position: the only single token
    that depends on the caption under the causal mask). text_states (N, T, C), input_ids (N, T) -> (N, K, C)."""
    n, t, _ = text_states.shape
    if num_tokens == t:
        return text_states
    if num_tokens > t:
        raise ValueError(f"projector.num_tokens {num_tokens} exceeds the text length {t}")
    if num_tokens == 1:
        eos = (input_ids == eos_token_id).int().argmax(dim=1)  # first end-of-text position
        return text_states[torch.arange(n), eos][:, None]
    return text_states[:, :num_tokens]


@torch.no_grad()
def caption_tokens(text_encoder, tokenizer, captions: list[str], num_tokens: int) -> torch.Tensor:
    """(N, K, C) targets of the MSE term, one text-encoder pass per distinct caption."""
    distinct = sorted(set(captions))
    states = encode_prompts(text_encoder, tokenizer, distinct).float().cpu()
    ids = tokenizer(distinct, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    targets = text_targets(states, ids, tokenizer.eos_token_id, num_tokens)
    row = {c: i for i, c in enumerate(distinct)}
    return targets[torch.tensor([row[c] for c in captions])]


def train_stage1(clips: ClipSet, text_tokens: torch.Tensor, projector_config: ProjectorConfig,
                 settings: Stage1Settings, loop_settings: loop.LoopSettings, out_dir: str | Path,
                 run_id: str = "") -> dict:
    """Train a projector from scratch (seeded) and write ``<out_dir>/projector`` (config + safetensors),
    ``losses.csv``, ``loss.png`` and ``summary.json``."""
    s = settings
    out = Path(out_dir)
    if len(text_tokens) != len(clips) or text_tokens.shape[1] != projector_config.num_tokens:
        raise ValueError(f"text targets {tuple(text_tokens.shape)} do not match {len(clips)} clips x "
                         f"{projector_config.num_tokens} tokens")
    if clips.clap.shape[1] != projector_config.audio_dim:
        raise ValueError(f"CLAP cache holds {clips.clap.shape[1]}-d embeddings, projector expects "
                         f"{projector_config.audio_dim}")
    classes = clips.contrastive_classes()
    try:
        sampler = ContrastiveSampler(classes, s.negatives)
    except ValueError as err:
        if clips.labelled:
            raise
        raise ValueError(f"{err}; without labels, a class is a source video: stage 1 needs two training videos, "
                         "one of them long enough for two windows (data.segment_seconds), or the variant no_stage1"
                         ) from err
    if not clips.labelled:
        log.info("stage 1: no labels; positives are other windows of the anchor's video, negatives windows of the "
                 "other %d videos", len(set(classes)) - 1)
    torch.manual_seed(loop_settings.seed)
    projector = build_projector(projector_config)
    projector.set_input_stats(clips.clap)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    clap, targets = clips.clap, text_tokens

    def step(model, gen, _step):
        batch = sampler.sample(s.batch_size, gen)
        unique, a, p, n = batch.unique()
        device = next(model.parameters()).device
        tokens = model(clap[unique].to(device))  # (U, K, C): each distinct clip once
        return stage1_loss(tokens, a.to(device), p.to(device), n.to(device), targets[batch.anchors].to(device),
                           temperature=s.temperature, alpha_contrastive=s.alpha_contrastive, alpha_mse=s.alpha_mse,
                           token_t=s.token_t, mse_reduction=s.mse_reduction)

    summary = loop.run(out, projector, optimizer, scheduler, step, loop_settings, desc="stage 1", run_id=run_id)
    if not loop.is_main_process():
        return summary
    save_projector(out / "projector", projector, stage="stage1", steps=s.steps)
    summary.update({"stage": 1, "clips": len(clips), "classes": len(sampler.members), "labelled": clips.labelled,
                    "negatives_used": sampler.num_negatives, "settings": asdict(s)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("stage 1: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "projector")
    return summary
