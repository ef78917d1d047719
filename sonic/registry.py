"""Loading pretrained components from the locations named in the config (local folders, or hub ids).

Every loader takes the config key it serves so that a missing or wrong location gives an error naming both
the key and the path. Nothing here names a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sonic.config import Config, ConfigError


HUB_PREFIX = "hub:"


def check_location(key: str, location: str | None, *, subfolders: tuple[str, ...] = ()) -> str:
    """Resolve a configured model location.

    A hub id must be written ``hub:<org>/<name>`` so that a download only ever happens on purpose; anything
    else is a local path, which must exist (with the expected subfolders).
    """
    if not location:
        raise ConfigError(f"models.{key} is not set in the configuration")
    if location.startswith(HUB_PREFIX):
        return location[len(HUB_PREFIX) :]
    path = Path(location).expanduser()
    if not path.exists():
        raise ConfigError(f"models.{key}: {path} does not exist (a hub id is written {HUB_PREFIX}<org>/<name>)")
    missing = [s for s in subfolders if not (path / s).exists()]
    if missing:
        raise ConfigError(f"models.{key}: {path} lacks {missing} (expected a diffusers/transformers folder)")
    return str(path)


@dataclass
class StableDiffusion:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: object


def load_stable_diffusion(
    cfg: Config, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusion:
    """The frozen SD components from ``models.sd`` (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = check_location("sd", cfg.models.sd, subfolders=("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype)
    text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
    scheduler = DDIMScheduler.from_pretrained(root, subfolder="scheduler")
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False).eval().to(device)
    return StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler)


def load_audio_encoder(cfg: Config, device: str | torch.device = "cpu"):
    """The configured audio encoder, checked against ``audio_encoder.embed_dim`` / ``sample_rate``."""
    from sonic.models.audio_encoder import ClapAudioEncoder

    location = check_location("clap", cfg.models.clap)
    encoder = ClapAudioEncoder.from_pretrained(location, device=device)
    if encoder.embed_dim != cfg.audio_encoder.embed_dim:
        raise ConfigError(
            f"models.clap: {location} gives {encoder.embed_dim}-d embeddings but audio_encoder.embed_dim is "
            f"{cfg.audio_encoder.embed_dim}"
        )
    if encoder.sample_rate != cfg.audio_encoder.sample_rate:
        raise ConfigError(
            f"models.clap: {location} expects {encoder.sample_rate} Hz but audio_encoder.sample_rate is "
            f"{cfg.audio_encoder.sample_rate}"
        )
    return encoder
