"""AudioToken (Yariv et al., "AudioToken: Adaptation of Text-Conditioned Diffusion Models for Audio-to-Image
Generation", Interspeech 2023) on our stack (SPEC §5): the same CLAP embeddings and the same frozen SD as
SonicDiffusion.

An embedder maps the audio to ONE token that takes the place of a placeholder word in "a photo of *" *before* the
text encoder (the token is an input word embedding, as in textual inversion); the frozen text encoder, UNet and
VAE are unchanged. Training: the diffusion loss (epsilon or v, as the base model predicts) plus 0.01 x L1 of the
token; only the embedder trains. Generation: the prompt with the token, classifier-free guidance against the
empty prompt, DDIM.

Differences from the original, and why:
* The original embedder attention-pools a sequence of BEATs features and applies an MLP. We have one CLAP vector
  per clip (the cache every method shares), so there is nothing to pool: the embedder is standardisation (the
  training set's statistics, as the SonicDiffusion projector) -> LayerNorm -> Linear -> GELU -> Linear(C).
* The placeholder is an existing single-token word (``*`` by default) instead of a new vocabulary entry: its input
  embedding is replaced through a removable forward hook on the text encoder's input embedding layer (transformers'
  ``CLIPTextModel.forward`` takes no ``inputs_embeds``), so neither the tokenizer nor the text encoder is copied or
  edited.
* The L1 term is the mean absolute value of the token's channels (scale-independent of C); weight 0.01.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sonic.competitors.common import InputStats, TextConditionedGenerator, freeze_sd, load_modules, save_modules
from sonic.models.io import read_config
from sonic.training import loop
from sonic.training.data import ClipSet, FrameStore
from sonic.training.stage2 import diffusion_target

log = logging.getLogger(__name__)

FORMAT = "sonic-audiotoken"


@dataclass(frozen=True)
class AudioTokenSettings:
    """``competitors.audiotoken.*``; defaults = the demo SonicDiffusion stage-2 budget (steps, batch, lr, wd,
    augmentation)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    hidden_dim: int = 512  # embedder MLP width
    l1_weight: float = 0.01  # the token regulariser of the paper
    template: str = "a photo of {}"
    placeholder: str = "*"  # an existing word that the tokenizer keeps as one token
    resolution: int | None = None  # None = generation.resolution
    resize_scale: float = 1.125
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.hidden_dim < 1:
            raise ValueError("audiotoken.steps, batch_size and hidden_dim must be >= 1")
        if self.l1_weight < 0:
            raise ValueError(f"audiotoken.l1_weight must be >= 0, got {self.l1_weight}")
        if self.template.count("{}") != 1:
            raise ValueError(f"audiotoken.template must contain one '{{}}', got {self.template!r}")
        if self.resize_scale < 1.0:
            raise ValueError(f"audiotoken.resize_scale must be >= 1, got {self.resize_scale}")


@dataclass(frozen=True)
class EmbedderConfig:
    audio_dim: int
    token_dim: int  # C, the text encoder's hidden size
    hidden_dim: int = 512

    def to_dict(self) -> dict:
        return asdict(self)


class AudioTokenEmbedder(nn.Module):
    """CLAP embedding (B, d_a) -> one token (B, C) in the text encoder's input embedding space."""

    def __init__(self, config: EmbedderConfig):
        super().__init__()
        self.config = config
        self.stats = InputStats(config.audio_dim)
        self.net = nn.Sequential(nn.LayerNorm(config.audio_dim), nn.Linear(config.audio_dim, config.hidden_dim),
                                 nn.GELU(), nn.Linear(config.hidden_dim, config.token_dim))

    @torch.no_grad()
    def init_output(self, word_embeddings: torch.Tensor) -> None:
        """Start near the vocabulary (V, C): output bias = the mean word embedding, output weights scaled to the
        words' spread (a freshly initialised Linear would give tokens ~30x larger than any word)."""
        out = self.net[-1]
        out.bias.copy_(word_embeddings.float().mean(0))
        out.weight.normal_(0.0, float(word_embeddings.float().std()) / math.sqrt(self.config.hidden_dim))

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        return self.net(self.stats(audio_embeds))  # (B, C)


# ---- the placeholder prompt ---------------------------------------------------------------------------------------
def placeholder_ids(tokenizer, prompt: str, placeholder: str) -> tuple[torch.Tensor, int]:
    """Token ids (1, T) of ``prompt`` padded as SD pads prompts, and the position of ``placeholder`` in them."""
    word = tokenizer(placeholder, add_special_tokens=False).input_ids
    if len(word) != 1:
        raise ValueError(f"placeholder {placeholder!r} is {len(word)} tokens for this tokenizer; choose a word that "
                         "is one token")
    ids = tokenizer([prompt], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    where = (ids[0] == word[0]).nonzero().flatten().tolist()
    if len(where) != 1:
        raise ValueError(f"prompt {prompt!r} must contain the placeholder {placeholder!r} exactly once as a word "
                         f"(found {len(where)} times)")
    return ids, where[0]


@contextlib.contextmanager
def token_substitution(text_encoder: nn.Module, position: int, tokens: torch.Tensor) -> Iterator[None]:
    """While active, the text encoder's input embedding at ``position`` is ``tokens`` (B, C) instead of the word's
    (a removable forward hook on ``get_input_embeddings()``; gradients reach ``tokens``)."""

    def hook(_module, _inputs, out):  # out (B, T, C)
        mask = torch.zeros(out.shape[1], dtype=torch.bool, device=out.device)
        mask[position] = True
        return torch.where(mask[None, :, None], tokens[:, None, :].to(out.dtype), out)

    handle = text_encoder.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def encode_with_token(text_encoder: nn.Module, input_ids: torch.Tensor, position: int, tokens: torch.Tensor
                      ) -> torch.Tensor:
    """Last hidden states (B, T, C) of the prompt ``input_ids`` (B, T) with the audio token at ``position``."""
    with token_substitution(text_encoder, position, tokens):
        return text_encoder(input_ids.to(tokens.device))[0]


def audiotoken_loss(pred: torch.Tensor, target: torch.Tensor, tokens: torch.Tensor, l1_weight: float
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE(pred, target) + l1_weight * mean |token|; returns the loss and its parts for ``losses.csv``."""
    diffusion = F.mse_loss(pred.float(), target.float())
    l1 = tokens.float().abs().mean()
    return diffusion + l1_weight * l1, {"diffusion": float(diffusion.detach()), "l1": float(l1.detach())}


class AudioTokenModel(nn.Module):
    """The frozen text encoder and UNet with the trainable embedder: (noisy, t, clap) -> (prediction, tokens)."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, embedder: AudioTokenEmbedder,
                 input_ids: torch.Tensor, position: int):
        super().__init__()
        self.unet, self.text_encoder, self.embedder = unet, text_encoder, embedder
        self.register_buffer("input_ids", input_ids, persistent=False)  # (1, T)
        self.position = position

    def forward(self, noisy: torch.Tensor, t: torch.Tensor, clap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embedder(clap)  # (B, C)
        text = encode_with_token(self.text_encoder, self.input_ids.expand(len(clap), -1), self.position, tokens)
        return self.unet(noisy, t, text.to(noisy.dtype)).sample, tokens


# ---- training -----------------------------------------------------------------------------------------------------
def train_audiotoken(sd, clips: ClipSet, settings: AudioTokenSettings, loop_settings: loop.LoopSettings,
                     out_dir: str | Path, resolution: int, run_id: str = "", **metadata) -> dict:
    """Train the embedder against the frozen ``sd`` (a :class:`sonic.registry.StableDiffusion`); writes
    ``<out_dir>/weights``, ``losses.csv``, ``loss.png``, ``summary.json``."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    s, out = settings, Path(out_dir)
    side = s.resolution or resolution
    factor = 2 ** (len(sd.vae.config.block_out_channels) - 1)
    if side % factor or (side // factor) % 8:
        raise ValueError(f"audiotoken resolution {side} must give latents (side / {factor}) divisible by 8")
    acc = Accelerator(mixed_precision=loop_settings.mixed_precision, cpu=not torch.cuda.is_available())
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(loop_settings.mixed_precision, torch.float32)
    freeze_sd(sd)
    unet, vae = sd.unet.to(acc.device, weight_dtype), sd.vae.to(acc.device, weight_dtype)
    text_encoder = sd.text_encoder.to(acc.device, weight_dtype)
    ids, position = placeholder_ids(sd.tokenizer, s.template.format(s.placeholder), s.placeholder)
    torch.manual_seed(loop_settings.seed)
    embedder = AudioTokenEmbedder(EmbedderConfig(clips.clap.shape[1], text_encoder.config.hidden_size,
                                                 s.hidden_dim))
    embedder.stats.fit(clips.clap)
    embedder.init_output(text_encoder.get_input_embeddings().weight)
    embedder.to(acc.device)
    if s.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(embedder.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    noise_schedule = DDPMScheduler.from_config(sd.scheduler.config)
    frames = FrameStore(clips.frames, round(side * s.resize_scale), side)
    scaling, steps_total = vae.config.scaling_factor, noise_schedule.config.num_train_timesteps

    def step(model, gen, _step):  # the stage-2 recipe, with the token in place of the gated layers
        b, device = s.batch_size, acc.device
        idx = torch.randint(len(clips), (b,), generator=gen)
        pixels = frames.batch(idx.tolist(), gen).to(device, weight_dtype)
        with torch.no_grad():
            dist = vae.encode(pixels).latent_dist
            latents = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=gen).to(device, dist.mean.dtype)
            latents = latents * scaling
        noise = torch.randn(latents.shape, generator=gen).to(device, latents.dtype)
        t = torch.randint(steps_total, (b,), generator=gen).to(device)
        pred, tokens = model(noise_schedule.add_noise(latents, noise, t), t, clips.clap[idx].to(device))
        return audiotoken_loss(pred, diffusion_target(noise_schedule, latents, noise, t), tokens, s.l1_weight)

    model = AudioTokenModel(unet, text_encoder, embedder, ids, position)
    summary = loop.run(out, model, optimizer, scheduler, step, loop_settings, accelerator=acc, desc="audiotoken",
                       run_id=run_id)
    save_audiotoken(out / "weights", embedder, s.template, s.placeholder, method="audiotoken", steps=s.steps,
                    **metadata)
    summary.update({"method": "audiotoken", "clips": len(clips), "resolution": side,
                    "trainable_parameters": sum(p.numel() for p in embedder.parameters()), "settings": asdict(s)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("audiotoken: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "weights")
    return summary


# ---- weights ------------------------------------------------------------------------------------------------------
def save_audiotoken(path: str | Path, embedder: AudioTokenEmbedder, template: str, placeholder: str,
                    **metadata) -> Path:
    config = {"embedder": embedder.config.to_dict(), "template": template, "placeholder": placeholder}
    return save_modules(path, FORMAT, {"embedder": embedder}, config, **metadata)


def load_audiotoken(path: str | Path) -> tuple[AudioTokenEmbedder, dict]:
    """The embedder (loaded strictly) and the saved config (template, placeholder, ...)."""
    config = read_config(path, FORMAT, "AudioToken weights")["config"]
    embedder = AudioTokenEmbedder(EmbedderConfig(**config["embedder"]))
    load_modules(path, {"embedder": embedder})
    return embedder.eval(), config


# ---- generation ---------------------------------------------------------------------------------------------------
class AudioTokenGenerator(TextConditionedGenerator):
    """``prompt=None`` uses the training template ("a photo of *"); a given prompt must contain the placeholder."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler, embedder: AudioTokenEmbedder,
                 template: str = "a photo of {}", placeholder: str = "*"):
        super().__init__(unet, vae, text_encoder, tokenizer, scheduler)
        self.embedder, self.template, self.placeholder = embedder, template, placeholder

    @torch.no_grad()
    def conditions(self, audio_embeds: torch.Tensor, prompt: str | None) -> torch.Tensor:
        ids, position = placeholder_ids(self.tokenizer, prompt or self.template.format(self.placeholder),
                                        self.placeholder)
        p = next(self.embedder.parameters())
        tokens = self.embedder(audio_embeds.to(p.device, p.dtype))
        return encode_with_token(self.text_encoder, ids.expand(len(tokens), -1), position, tokens)

    @classmethod
    def from_weights(cls, sd, path: str | Path) -> AudioTokenGenerator:
        embedder, config = load_audiotoken(path)
        param = next(sd.unet.parameters())
        embedder.to(param.device, param.dtype)
        return cls(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, embedder, config["template"],
                   config["placeholder"])
