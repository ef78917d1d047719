"""Stage 2 — parameter-efficient tuning of the gated cross-attention layers (paper §3.4, §3.6, supplement §1.4;
paper §3.4).

Frozen: VAE, text encoder, UNet. Trainable: the gated audio cross-attention layers (lr 1e-4) and the projector
(lr 1e-5, frozen in the ``projector_frozen_stage2`` ablation). DDPM epsilon-prediction MSE with the empty prompt;
the CLAP embedding is replaced by zeros with probability 0.1 (the null audio of classifier-free guidance); frames
get a random crop and a random horizontal flip; AdamW, weight decay 1e-2, constant learning rate.
A v-prediction base model (SD-2.x style; its scheduler config says so) is tuned on the v target instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from sonic.models.io import save_weights
from sonic.models.projector import AudioProjector
from sonic.models.text import encode_prompts
from sonic.settings import Stage2Settings
from sonic.training import loop
from sonic.training.data import ClipSet, FrameStore

if TYPE_CHECKING:  # the adapters import diffusers, which the competitors importing this module may not need
    from sonic.models.adapters import AudioAdapters

log = logging.getLogger(__name__)


class Stage2Model(nn.Module):
    """The frozen UNet with its adapters, and the projector: (noisy latents, t, text states, CLAP, keep) -> eps.
    ``keep`` (B,) bool: False replaces that sample's CLAP embedding by zeros (null audio)."""

    def __init__(self, unet: nn.Module, projector: AudioProjector):
        super().__init__()
        self.unet = unet
        self.projector = projector

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, text: torch.Tensor, clap: torch.Tensor,
                keep: torch.Tensor) -> torch.Tensor:
        clap = clap * keep[:, None].to(clap.dtype)  # (B, d_a)
        tokens = self.projector(clap)  # (B, K, C)
        return self.unet(noisy, t, text, cross_attention_kwargs={"audio_tokens": tokens}).sample


def diffusion_target(noise_schedule, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet is trained to predict: the noise (SD-1.x, epsilon prediction) or, for a v-prediction model
    (SD-2.x style, as its scheduler config says), ``v = sqrt(a_t) eps - sqrt(1 - a_t) x0``."""
    kind = noise_schedule.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_schedule.get_velocity(latents, noise, t)
    raise ValueError(f"stage 2 supports epsilon and v_prediction UNets, not {kind!r}")


def prepare_unet(unet: nn.Module, placement, projector: AudioProjector, train_projector: bool
                 ) -> tuple[AudioAdapters, list[dict]]:
    """Freeze the UNet, install fresh adapters (gates 0, weights copied from the text cross-attention) and return
    them with the optimizer's parameter groups (lr set by the caller): adapter weights, gates (no weight decay:
    decay would pull the gates shut), and the projector unless it is frozen."""
    from sonic.models.adapters import install_adapters

    unet.requires_grad_(False)
    adapters = install_adapters(unet, placement)
    for p in adapters.parameters():
        p.requires_grad_(True)
    projector.requires_grad_(train_projector)
    gates = [m.gamma for _, m in adapters.modules()]
    gate_ids = {id(g) for g in gates}
    groups = [{"params": [p for p in adapters.parameters() if id(p) not in gate_ids], "name": "adapters"},
              {"params": gates, "name": "gates", "weight_decay": 0.0}]
    if train_projector:
        groups.append({"params": list(projector.parameters()), "name": "projector"})
    return adapters, groups


def train_stage2(sd, clips: ClipSet, projector: AudioProjector, placement, settings: Stage2Settings,
                 loop_settings: loop.LoopSettings, out_dir: str | Path, resolution: int, run_id: str = "",
                 **metadata) -> dict:
    """Tune ``sd`` (a :class:`sonic.models.registry.StableDiffusion`) with audio; writes ``<out_dir>/weights`` (the strict
    SonicDiffusion format), ``losses.csv``, ``loss.png``, ``summary.json``."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    s = settings
    out = Path(out_dir)
    side = s.resolution or resolution
    factor = 2 ** (len(sd.vae.config.block_out_channels) - 1)
    if side % factor or (side // factor) % 8:
        raise ValueError(f"stage 2 resolution {side} must give latents (side / {factor}) divisible by 8")
    if clips.clap.shape[1] != projector.config.audio_dim:
        raise ValueError(f"CLAP cache holds {clips.clap.shape[1]}-d embeddings, projector expects "
                         f"{projector.config.audio_dim}")
    acc = Accelerator(mixed_precision=loop_settings.mixed_precision, cpu=not torch.cuda.is_available())
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(loop_settings.mixed_precision, torch.float32)
    unet, vae = sd.unet.to(acc.device, weight_dtype), sd.vae.to(acc.device, weight_dtype)
    torch.manual_seed(loop_settings.seed)
    adapters, groups = prepare_unet(unet, placement, projector, s.train_projector)
    for _, module in adapters.modules():
        module.float()  # trainable weights stay fp32 under mixed precision
    projector.float()
    rates = {"adapters": s.lr_adapters, "gates": s.lr_gates or s.lr_adapters, "projector": s.lr_projector}
    for g in groups:
        g["lr"] = rates[g["name"]]
    if s.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    noise_schedule = DDPMScheduler.from_config(sd.scheduler.config)
    text = encode_prompts(sd.text_encoder.to(acc.device), sd.tokenizer, [""]).to(weight_dtype)  # (1, 77, C)
    frames = FrameStore(clips.frames, round(side * s.resize_scale), side)
    scaling = vae.config.scaling_factor
    steps_total = noise_schedule.config.num_train_timesteps

    def step(model, gen, _step):
        b, device = s.batch_size, acc.device
        idx = torch.randint(len(clips), (b,), generator=gen)
        pixels = frames.batch(idx.tolist(), gen).to(device, weight_dtype)
        with torch.no_grad():
            dist = vae.encode(pixels).latent_dist
            latents = (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(device, dist.mean.dtype))
            latents = latents * scaling
        noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
        t = torch.randint(steps_total, (b,), generator=gen).to(device)
        noisy = noise_schedule.add_noise(latents, noise, t)
        keep = (torch.rand(b, generator=gen) >= s.null_audio_prob).to(device)
        pred = model(noisy, t, text.expand(b, -1, -1), clips.clap[idx].to(device), keep)
        return F.mse_loss(pred.float(), diffusion_target(noise_schedule, latents, noise, t).float()), {}

    model = Stage2Model(unet, projector)
    summary = loop.run(out, model, optimizer, scheduler, step, loop_settings, accelerator=acc, desc="stage 2",
                       run_id=run_id)
    if not loop.is_main_process():
        return summary
    save_weights(out / "weights", projector, adapters, stage="stage2", steps=s.steps, **metadata)
    summary.update({
        "stage": 2, "clips": len(clips), "resolution": side, "layers": adapters.names,
        "trainable_parameters": sum(p.numel() for g in groups for p in g["params"]),
        "gates": adapters.gates(), "settings": asdict(s),
    })
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("stage 2: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "weights")
    return summary
