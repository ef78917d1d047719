"""Parameter counts of the projector, the gated layers and the UNet, from the architecture alone.

The UNet is built on the ``meta`` device, so even SD-1.4 size costs no memory and needs no weights.
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

from sonic.config import Config, ProjectorSettings, unet_architecture
from sonic.machine import describe
from sonic.models.adapters import install_adapters
from sonic.models.projector import ProjectorConfig, build_projector


def projector_config(cfg: Config, token_dim: int, settings: ProjectorSettings | None = None) -> ProjectorConfig:
    """The projector of ``settings`` (default ``cfg.projector``; a training variant passes its own) for the
    configured audio encoder and a UNet with ``token_dim``-d text tokens."""
    p = settings or cfg.projector
    return ProjectorConfig(
        audio_dim=cfg.audio_encoder.embed_dim,
        num_tokens=p.num_tokens,
        token_dim=token_dim,
        num_blocks=p.num_blocks,
        num_heads=p.num_heads,
        attn_dim=p.attn_dim,
        architecture=p.architecture,
    )


def count(module_or_params) -> int:
    params = module_or_params.parameters() if hasattr(module_or_params, "parameters") else module_or_params
    return sum(p.numel() for p in params)


def parameter_counts(cfg: Config) -> dict:
    arch = unet_architecture(cfg)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(arch)
        unet_params = count(unet)
        adapters = install_adapters(unet, cfg.adapters.placement)
        projector = build_projector(projector_config(cfg, unet.config.cross_attention_dim))
    adapter_params = adapters.num_parameters()
    projector_params = count(projector)
    return {
        "config": cfg.source,
        "placement": cfg.adapters.placement if isinstance(cfg.adapters.placement, str) else list(cfg.adapters.placement),
        "adapter_layers": adapters.names,
        "unet": unet_params,
        "adapters": adapter_params,
        "projector": projector_params,
        "trainable": adapter_params + projector_params,
        "trainable_fraction_of_unet": round((adapter_params + projector_params) / unet_params, 4),
        "machine": describe(),
    }
