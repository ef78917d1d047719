"""AudioToken (Yariv et al., "AudioToken: Adaptation of Text-Conditioned Diffusion Models for Audio-to-Image
Generation", Interspeech 2023) on our stack (docs/competitors.md): the same CLAP embeddings and the same frozen SD as
SonicDiffusion.

An embedder maps the audio to ONE token that takes the place of a placeholder word in "a photo of *" *before* the
text encoder (the token is an input word embedding, as in textual inversion); the frozen text encoder and VAE are
unchanged. Training: the diffusion loss (epsilon or v, as the base model predicts) plus 0.01 x L1 of the token.
The embedder trains, and, as the SonicDiffusion supplement (§2.3) ran AudioToken, LoRA on every attention
projection of the UNet (``to_q``, ``to_k``, ``to_v``, ``to_out.0`` of self- and cross-attention) through PEFT
(``unet.add_adapter``), rank 4 as the original's ``LoRAAttnProcessor`` (its default rank, scale 1, down
projection N(0, 1/r), up projection 0, so training starts at the base UNet); ``lora_rank: 0`` trains the embedder
alone (the original's default ``--lora False``). One AdamW over both, as the original; its learning rate is
multiplied by the batch size when ``lr_scale_by_batch`` is set (the original's ``--scale_lr``, which scales by
batch x accumulation x processes) and follows ``lr_scheduler`` (diffusers' ``get_scheduler``; the original's
default ``constant`` ignores its 500 ``lr_warmup_steps``, ``constant_with_warmup`` uses them). Generation: the
prompt with the token, the LoRA-adapted UNet, classifier-free guidance against the empty prompt, DDIM.

Differences from the original, and why:
* The original embedder attention-pools a sequence of BEATs features and applies an MLP. We have one CLAP vector
  per clip (the cache every method shares), so there is nothing to pool: the embedder is standardisation (the
  training set's statistics, as the SonicDiffusion projector) -> LayerNorm -> Linear -> GELU -> Linear(C).
* The placeholder is an existing single-token word (``*`` by default) instead of a new vocabulary entry: its input
  embedding is replaced through a removable forward hook on the text encoder's input embedding layer (transformers'
  ``CLIPTextModel.forward`` takes no ``inputs_embeds``), so neither the tokenizer nor the text encoder is copied or
  edited.
* The L1 term is the mean absolute value of the token's channels (scale-independent of C); weight 0.01.
* No gradient accumulation: the paper profile trains batch 16 directly, the original's 4 x 4 accumulation.
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
from sonic.settings import AudioTokenSettings
from sonic.training import loop
from sonic.training.data import ClipSet, FrameStore
from sonic.training.stage2 import diffusion_target

log = logging.getLogger(__name__)

FORMAT = "sonic-audiotoken"
LORA_NAME = "audiotoken"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
LORA_FILE = "lora.safetensors"


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


# ---- LoRA on the UNet (PEFT) ---------------------------------------------------------------------------------------
def add_lora(unet: nn.Module, rank: int) -> list[nn.Parameter]:
    """Add the AudioToken LoRA (PEFT, adapter ``audiotoken``) to every attention projection of ``unet``; returns its
    parameters (the only trainable ones when the UNet was frozen). At initialisation the UNet's output is
    unchanged (the up projections start at 0)."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=list(LORA_TARGETS)), adapter_name=LORA_NAME)
    return [p for n, p in unet.named_parameters() if ".lora_" in n]


def remove_lora(unet: nn.Module) -> None:
    """Take the LoRA out again: the UNet's modules and state dict are the base ones, bit for bit."""
    unet.unload_lora()


def lora_state_dict(unet: nn.Module) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=LORA_NAME)
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def load_lora(unet: nn.Module, path: str | Path, rank: int) -> None:
    """Add the LoRA to ``unet`` and load ``path`` (``lora.safetensors``) strictly: missing or unexpected keys and
    shape mismatches are errors naming the file."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    add_lora(unet, rank)
    tensors = load_file(str(path))
    expected = lora_state_dict(unet)
    if tensors.keys() != expected.keys():
        missing, extra = sorted(expected.keys() - tensors.keys()), sorted(tensors.keys() - expected.keys())
        raise ValueError(f"{path}: LoRA weights do not match the UNet (missing {missing[:3]}, unexpected {extra[:3]})")
    bad = [k for k, v in tensors.items() if v.shape != expected[k].shape]
    if bad:
        raise ValueError(f"{path}: LoRA weights of the wrong shape, e.g. {bad[0]}: {tuple(tensors[bad[0]].shape)} vs "
                       f"{tuple(expected[bad[0]].shape)} (rank {rank})")
    param = next(unet.parameters())
    set_peft_model_state_dict(unet, {k: v.to(param.device) for k, v in tensors.items()}, adapter_name=LORA_NAME)


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
    """Train the embedder against the frozen ``sd`` (a :class:`sonic.models.registry.StableDiffusion`); writes
    ``<out_dir>/weights``, ``losses.csv``, ``loss.png``, ``summary.json``."""
    from accelerate import Accelerator
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

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
    lora = add_lora(unet, s.lora_rank) if s.lora_rank else []
    for p in lora:
        p.data = p.data.float()  # trained in full precision under fp16 / bf16 weights, as diffusers' LoRA scripts
    if s.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    lr = s.lr * s.batch_size if s.lr_scale_by_batch else s.lr
    optimizer = torch.optim.AdamW(list(embedder.parameters()) + lora, lr=lr, weight_decay=s.weight_decay)
    scheduler = get_scheduler(s.lr_scheduler, optimizer, num_warmup_steps=s.lr_warmup_steps,
                              num_training_steps=loop_settings.steps)
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
    try:
        summary = loop.run(out, model, optimizer, scheduler, step, loop_settings, accelerator=acc,
                           desc="audiotoken", run_id=run_id)
        main = loop.is_main_process()
        if main:
            save_audiotoken(out / "weights", embedder, s.template, s.placeholder, lora_rank=s.lora_rank,
                            lora=lora_state_dict(unet) if lora else None, method="audiotoken", steps=s.steps,
                            **metadata)
    finally:
        if lora:
            remove_lora(unet)  # the caller's frozen SD is the base model again
    if not main:
        return summary
    summary.update({"method": "audiotoken", "clips": len(clips), "resolution": side, "lr": lr,
                    "trainable_parameters": sum(p.numel() for p in embedder.parameters()),
                    "lora_parameters": sum(p.numel() for p in lora), "settings": asdict(s)})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("audiotoken: %d steps, final loss %.4f -> %s", s.steps, summary["final_loss"], out / "weights")
    return summary


# ---- weights ------------------------------------------------------------------------------------------------------
def save_audiotoken(path: str | Path, embedder: AudioTokenEmbedder, template: str, placeholder: str,
                    lora_rank: int = 0, lora: dict[str, torch.Tensor] | None = None, **metadata) -> Path:
    """``config.json`` + ``model.safetensors`` (the embedder) and, with LoRA, ``lora.safetensors`` (PEFT keys)."""
    from safetensors.torch import save_file

    if bool(lora_rank) != (lora is not None):
        raise ValueError("lora_rank and the LoRA weights go together")
    config = {"embedder": embedder.config.to_dict(), "template": template, "placeholder": placeholder,
              "lora_rank": lora_rank}
    out = save_modules(path, FORMAT, {"embedder": embedder}, config, **metadata)
    if lora is not None:
        save_file(lora, str(Path(path) / LORA_FILE))
    return out


def load_audiotoken(path: str | Path) -> tuple[AudioTokenEmbedder, dict]:
    """The embedder (loaded strictly) and the saved config (template, placeholder, lora_rank, ...); the LoRA, when
    ``lora_rank`` is set, is loaded into a UNet by :func:`load_lora` from ``<path>/lora.safetensors``."""
    config = read_config(path, FORMAT, "AudioToken weights")["config"]
    embedder = AudioTokenEmbedder(EmbedderConfig(**config["embedder"]))
    load_modules(path, {"embedder": embedder})
    if config.get("lora_rank") and not (Path(path) / LORA_FILE).is_file():
        raise FileNotFoundError(f"{path}: the config says LoRA rank {config['lora_rank']} but {LORA_FILE} is missing")
    return embedder.eval(), config


# ---- generation ---------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class AudioTokenGenerator(TextConditionedGenerator):
    """``prompt=None`` uses the training template ("a photo of *"); a given prompt must contain the placeholder."""

    embedder: AudioTokenEmbedder
    template: str = "a photo of {}"
    placeholder: str = "*"

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
        if config.get("lora_rank"):
            load_lora(sd.unet, Path(path) / LORA_FILE, config["lora_rank"])
        param = next(sd.unet.parameters())
        embedder.to(param.device, param.dtype)
        return cls.from_sd(sd, embedder=embedder, template=config["template"], placeholder=config["placeholder"])
