"""What both trained competitors of Table 1 share (README, "Competitors"): input standardisation of the CLAP embedding,
the
strict weights format, and a text-conditioned DDIM sampler with the same interface, the same starting noise and
the same classifier-free guidance as :class:`sonic.models.pipeline.SonicPipeline`.

A competitor turns audio into a *text* condition (AudioToken: one token inside a prompt; GlueGen: all 77 text
states); the frozen UNet then runs unmodified, guided against the empty prompt:

    eps = eps(null_text) + w * (eps(audio condition) - eps(null_text))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from sonic.models.io import VERSION, WEIGHTS_NAME, _write
from sonic.models.pipeline import FrozenSDSampler, encode_prompts, guided_noise


class InputStats(nn.Module):
    """Per-dimension standardisation of CLAP embeddings with the training set's mean and std (buffers saved with
    the weights, not trained) — the same treatment the SonicDiffusion projector gets, so that no method is
    handicapped by the small spread of unit-norm CLAP vectors."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, audio_embeds: torch.Tensor, eps: float = 1e-6) -> None:
        self.mean.copy_(audio_embeds.float().mean(0))
        self.std.copy_(audio_embeds.float().std(0).clamp_min(eps))

    def forward(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        if audio_embeds.ndim != 2 or audio_embeds.shape[1] != self.mean.numel():
            raise ValueError(f"expected (batch, {self.mean.numel()}) CLAP embeddings, got {tuple(audio_embeds.shape)}")
        return (audio_embeds - self.mean) / self.std


def freeze_sd(sd) -> None:
    """Stable Diffusion stays frozen for both competitors: UNet, VAE and text encoder."""
    for module in (sd.unet, sd.vae, sd.text_encoder):
        module.requires_grad_(False).eval()


# ---- weights on disk ---------------------------------------------------------------------------------------------
def save_modules(path: str | Path, fmt: str, modules: dict[str, nn.Module], config: dict, **metadata) -> Path:
    """``config.json`` (format, version, ``config``, metadata) + ``model.safetensors`` with keys
    ``<name>.<module path>``, in the project's weights layout (:mod:`sonic.models.io`)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v.detach().contiguous().cpu() for name, m in modules.items()
               for k, v in m.state_dict().items()}
    return _write(path, tensors, {"format": fmt, "version": VERSION, "config": config, "metadata": metadata})


def load_modules(path: str | Path, modules: dict[str, nn.Module]) -> None:
    """Load ``model.safetensors`` into ``modules`` strictly: a missing or unexpected key (or a shape mismatch) is an
    error naming the keys."""
    file = Path(path) / WEIGHTS_NAME
    tensors = load_file(str(file))
    unknown = sorted(k for k in tensors if k.split(".", 1)[0] not in modules)
    if unknown:
        raise KeyError(f"{file}: unexpected keys {unknown[:5]}")
    for name, module in modules.items():
        state = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise KeyError(f"{file}: {name} weights do not match its config: {err}") from err


# ---- generation --------------------------------------------------------------------------------------------------
class TextConditionedGenerator(FrozenSDSampler):
    """Frozen SD sampled from a per-image text condition (B, 77, C) that a subclass derives from the audio.

    ``__call__`` has :meth:`SonicPipeline.__call__`'s interface and order (audio-major), starts every (clip, seed)
    from :func:`~sonic.models.pipeline.initial_latents` exactly as SonicPipeline does, and uses DDIM with
    classifier-free guidance against the empty prompt."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler):
        self.unet, self.vae, self.text_encoder, self.tokenizer, self.scheduler = (
            unet, vae, text_encoder, tokenizer, scheduler)

    def conditions(self, audio_embeds: torch.Tensor, prompt: str | None) -> torch.Tensor:
        """Text-encoder-space condition (B, 77, C) for a batch of CLAP embeddings (B, d_a)."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(
        self,
        audio_embeds: torch.Tensor,
        prompt: str | None = None,
        seeds: Sequence[int] = (0,),
        num_inference_steps: int = 50,
        guidance_scale: float = 8.0,
        height: int | None = None,
        width: int | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> torch.Tensor:
        """Images (N * S, 3, H, W) in [0, 1] for N audio embeddings x S seeds, audio-major order."""
        audio_embeds = torch.as_tensor(audio_embeds)
        if audio_embeds.ndim == 1:
            audio_embeds = audio_embeds[None]
        latent_shape = self.latent_shape(height, width)
        jobs = [(i, s) for i in range(len(audio_embeds)) for s in seeds]
        null_text = encode_prompts(self.text_encoder, self.tokenizer, [""]).to(self.dtype)  # (1, 77, C)
        outputs = []
        bar = tqdm(total=len(jobs), desc="generate", unit="img", disable=not progress)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            b = len(chunk)
            cond = self.conditions(audio_embeds[[i for i, _ in chunk]].to(self.device), prompt).to(self.dtype)
            latents = self.start_latents([s for _, s in chunk], latent_shape)
            latents = self.denoise(latents, cond, null_text.expand(b, -1, -1), num_inference_steps, guidance_scale)
            outputs.append(self.decode(latents))
            bar.update(b)
        bar.close()
        return torch.cat(outputs)

    def denoise(self, latents, cond, null_text, num_inference_steps: int, guidance_scale: float) -> torch.Tensor:
        """DDIM with guidance; one UNet call on [unconditional; conditional] per step, as SonicPipeline."""
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        context = torch.cat([null_text, cond])
        for t in self.scheduler.timesteps:
            eps = self.unet(torch.cat([latents, latents]), t, context).sample
            eps_uncond, eps_cond = eps.chunk(2)
            latents = self.scheduler.step(guided_noise(eps_uncond, eps_cond, guidance_scale), t, latents).prev_sample
        return latents
