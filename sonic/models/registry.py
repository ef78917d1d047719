"""Loading pretrained components from the locations named in the config (local folders, or hub ids).

Every loader takes the config key it serves so that a missing or wrong location gives an error naming both
the key and the path. Nothing here names a model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from sonic.config import Config, ConfigError

log = logging.getLogger(__name__)


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


def ddim_scheduler(root: str):
    """SD's DDIM sampler from the folder's ``scheduler/`` config. SD-1.x folders carry a PNDM config, and DDIM's own
    default ``clip_sample=True`` would clip every x_0 prediction of SD's latents to [-1, 1] (and stop DDIM
    inversion); a config that does not name it is read with SD's ``clip_sample: false``, as the released
    SD-1.4 config has it."""
    from diffusers import DDIMScheduler

    config = DDIMScheduler.load_config(root, subfolder="scheduler")
    if "clip_sample" in config:
        return DDIMScheduler.from_config(config)
    log.warning("%s/scheduler: no clip_sample in its config (%s); using SD's clip_sample=false, not DDIM's default",
                root, config.get("_class_name"))
    return DDIMScheduler.from_config(config, clip_sample=False)


def load_stable_diffusion(
    cfg: Config, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusion:
    """The frozen SD components from ``models.sd`` (unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    root = check_location("sd", cfg.models.sd, subfolders=("unet", "vae", "text_encoder", "tokenizer", "scheduler"))
    unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype)
    text_encoder, tokenizer = load_text_encoder(cfg, device, dtype)
    scheduler = ddim_scheduler(root)
    for module in (unet, vae):
        module.requires_grad_(False).eval().to(device)
    return StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler)


def load_text_encoder(cfg: Config, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Only the frozen SD text encoder and its tokenizer (stage 1 needs nothing else of ``models.sd``)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    root = check_location("sd", cfg.models.sd, subfolders=("text_encoder", "tokenizer"))
    text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", torch_dtype=dtype)
    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
    return text_encoder.requires_grad_(False).eval().to(device), tokenizer


AUDIO_ENCODER_KINDS = ("clap", "msclap_2022")


def encoder_config_for(cfg: Config, weights_dir: str | Path) -> Config:
    """``cfg`` with the audio encoder a weights folder was made with: the configured one, or for weights that name
    another (the imported release: Microsoft CLAP 2022), that one from ``models.msclap_2022``."""
    from dataclasses import replace

    from sonic.config import AudioEncoderConfig
    from sonic.models.io import read_config

    wanted = read_config(weights_dir).get("metadata", {}).get("audio_encoder")
    if not wanted or wanted["kind"] == cfg.audio_encoder.kind:
        return cfg
    if wanted["kind"] != "msclap_2022":
        raise ConfigError(f"{weights_dir}: made with audio encoder {wanted['kind']!r}, the config has "
                          f"{cfg.audio_encoder.kind!r}")
    location = cfg.models.require("msclap_2022")
    return replace(cfg, models=replace(cfg.models, clap=location), audio_encoder=AudioEncoderConfig(**wanted))


def load_audio_encoder(cfg: Config, device: str | torch.device = "cpu"):
    """The audio encoder of ``audio_encoder.kind`` from ``models.clap`` (LAION CLAP: a transformers folder;
    ``msclap_2022``: the ``CLAP_weights_2022.pth`` file), checked against ``audio_encoder.embed_dim`` /
    ``sample_rate``."""
    kind = cfg.audio_encoder.kind
    location = check_location("clap", cfg.models.clap)
    if kind == "clap":
        from sonic.models.audio_encoder import ClapAudioEncoder

        encoder = ClapAudioEncoder.from_pretrained(location, device=device)
    elif kind == "msclap_2022":
        from sonic.models.msclap import load_msclap_2022

        if not Path(location).is_file():
            raise ConfigError(f"models.clap: {location} is not a file (audio_encoder.kind msclap_2022 reads "
                              "CLAP_weights_2022.pth)")
        encoder = load_msclap_2022(location, device=device)
    else:
        raise ConfigError(f"audio_encoder.kind {kind!r} is not one of {AUDIO_ENCODER_KINDS}")
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


@dataclass
class Clip:
    model: torch.nn.Module  # transformers CLIPModel
    tokenizer: object
    image_processor: object


def load_clip(cfg: Config, key: str, device: str | torch.device = "cpu") -> Clip:
    """A CLIP (``models.clip_ais`` for AIS, ``models.clip_eval`` for IIS/AIC) with its tokenizer and processor."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    if key not in ("clip_ais", "clip_eval"):
        raise ValueError(f"load_clip serves models.clip_ais and models.clip_eval, not models.{key}")
    location = check_location(key, getattr(cfg.models, key))
    model = CLIPModel.from_pretrained(location).eval().requires_grad_(False).to(device)
    return Clip(model, CLIPTokenizer.from_pretrained(location), CLIPImageProcessor.from_pretrained(location))


def load_wav2clip(cfg: Config, device: str | torch.device = "cpu"):
    """The Wav2CLIP audio encoder from the official checkpoint file (or a miniature one saved the same way)."""
    from sonic.models.wav2clip import load_wav2clip as load

    location = check_location("wav2clip", cfg.models.wav2clip)
    if not Path(location).is_file():
        raise ConfigError(f"models.wav2clip: {location} is not a file (expected Wav2CLIP.pt)")
    return load(location, device=device)


def load_blip2(cfg: Config, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """BLIP-2 captioner and its processor from ``models.blip2``."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    location = check_location("blip2", cfg.models.blip2)
    model = Blip2ForConditionalGeneration.from_pretrained(location, torch_dtype=dtype)
    return model.eval().requires_grad_(False).to(device), Blip2Processor.from_pretrained(location)
