"""Audio-conditioned generation with a frozen SD-1.x (paper §3.6; supp. Eq. 3 and §3.2).

DDIM sampling with classifier-free guidance over the *joint* condition (paper §3.6):

    eps = eps(null_text, null_audio) + w * (eps(text, audio) - eps(null_text, null_audio))

``null_text`` is the empty prompt, ``null_audio`` the projector applied to a zero CLAP embedding. Without a
prompt, the conditional branch uses the empty prompt too (as in stage-2 training), so guidance acts on audio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from sonic.models.audio_encoder import AudioEncoder
from sonic.models.projector import AudioProjector
from sonic.models.text import encode_prompts

if TYPE_CHECKING:  # diffusers only for annotations: importing it costs seconds that stage 1 and GlueGen never need
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from sonic.models.adapters import AudioAdapters

__all__ = ["FrozenSDSampler", "SonicPipeline", "encode_prompts", "guided_noise", "initial_latents",
           "interpolate_embeddings"]


def guided_noise(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Standard classifier-free guidance (the supplement's Eq. 3 prints a minus sign; it is a typo)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def interpolate_embeddings(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Linear interpolation of two CLAP embeddings (paper Fig. 10a): alpha=0 gives ``a``, 1 gives ``b``."""
    return (1.0 - alpha) * a + alpha * b


def initial_latents(seed: int, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    """Starting noise for one seed, drawn on the CPU so that a seed means the same image on every device."""
    return torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=dtype)


class FrozenSDSampler:
    """What every sampler on a frozen SD shares (SonicPipeline, the competitors' generators): device and dtype,
    latent geometry, the starting noise of a seed, decoding. Subclasses provide ``unet``, ``vae``, ``scheduler``."""

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def latent_shape(self, height: int | None, width: int | None) -> tuple[int, int, int]:
        """(C, h, w) of the latents of a height x width image (default: the UNet's sample size)."""
        f = self.vae_scale_factor
        default_size = self.unet.config.sample_size * f
        height, width = height or default_size, width or default_size
        if height % f or width % f:
            raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
        return (self.unet.config.in_channels, height // f, width // f)

    def start_latents(self, seeds: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
        """(B, C, h, w) starting latents, one per seed, scaled for the scheduler."""
        latents = torch.stack([initial_latents(s, shape) for s in seeds])
        return latents.to(self.device, self.dtype) * self.scheduler.init_noise_sigma

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return ((images.float() + 1) / 2).clamp(0, 1).cpu()


@dataclass
class SonicPipeline(FrozenSDSampler):
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: DDIMScheduler
    projector: AudioProjector
    adapters: AudioAdapters
    audio_encoder: AudioEncoder | None = None

    # ---- conditions -------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """SD text-encoder last hidden states (B, 77, C)."""
        return encode_prompts(self.text_encoder, self.tokenizer, prompts).to(self.dtype)

    def embed_audio(self, waveforms: Sequence[np.ndarray], gain_db: float = 0.0) -> torch.Tensor:
        if self.audio_encoder is None:
            raise RuntimeError("this pipeline has no audio encoder; pass CLAP embeddings instead of waveforms")
        return self.audio_encoder.embed(waveforms, gain_db=gain_db)

    def audio_tokens(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        return self.projector(audio_embeds.to(self.device, self.dtype))

    # ---- one denoising step -----------------------------------------------------------------------------
    def noise_pred(
        self,
        latents: torch.Tensor,
        t: torch.Tensor | int,
        text: torch.Tensor,
        audio: torch.Tensor,
        null_text: torch.Tensor,
        null_audio: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Guided epsilon for a batch: one UNet call on [unconditional; conditional]."""
        model_in = torch.cat([latents, latents])
        ctx = torch.cat([null_text, text])
        tokens = torch.cat([null_audio, audio])
        eps = self.unet(model_in, t, ctx, cross_attention_kwargs={"audio_tokens": tokens}).sample
        eps_uncond, eps_cond = eps.chunk(2)
        return guided_noise(eps_uncond, eps_cond, guidance_scale)

    @contextlib.contextmanager
    def beta(self, beta: float | Mapping[str, float]) -> Iterator[None]:
        """Temporarily set the adapters' inference strength (one value or per layer)."""
        saved = self.adapters.get_beta()
        self.adapters.set_beta(beta)
        try:
            yield
        finally:
            self.adapters.set_beta(saved)

    # ---- sampling ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        audio_embeds: torch.Tensor,
        prompt: str | None = None,
        seeds: Sequence[int] = (0,),
        num_inference_steps: int = 50,
        guidance_scale: float = 8.0,
        beta: float | Mapping[str, float] = 1.0,
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

        text = self.encode_text([prompt or ""])
        null_text = self.encode_text([""])
        outputs = []
        with self.beta(beta):
            bar = tqdm(total=len(jobs), desc="generate", unit="img", disable=not progress)
            for start in range(0, len(jobs), batch_size):
                chunk = jobs[start : start + batch_size]
                b = len(chunk)
                embeds = audio_embeds[[i for i, _ in chunk]]
                audio = self.audio_tokens(embeds)
                null_audio = self.projector.null_tokens(b)
                latents = self.start_latents([s for _, s in chunk], latent_shape)
                latents = self.denoise(
                    latents, text.expand(b, -1, -1), audio, null_text.expand(b, -1, -1), null_audio,
                    num_inference_steps, guidance_scale,
                )
                outputs.append(self.decode(latents))
                bar.update(b)
            bar.close()
        return torch.cat(outputs)

    def denoise(self, latents, text, audio, null_text, null_audio, num_inference_steps, guidance_scale):
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        for t in self.scheduler.timesteps:
            eps = self.noise_pred(latents, t, text, audio, null_text, null_audio, guidance_scale)
            latents = self.scheduler.step(eps, t, latents).prev_sample
        return latents
