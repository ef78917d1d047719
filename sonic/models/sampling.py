"""DDIM sampling with classifier-free guidance on a frozen SD-1.x: the one denoising loop of SonicPipeline, the
competitors' generators, Plug-and-Play editing and the miniature SD's text-to-image check.

Each step makes one UNet call on the batch ``[unconditional; conditional]`` and guides with

    eps = eps_uncond + w * (eps_cond - eps_uncond)

A per-step hook may put extra items ahead of that batch in the same UNet call (Plug-and-Play's source branch);
their outputs are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch
from tqdm.auto import tqdm

from sonic.models.text import encode_prompts

if TYPE_CHECKING:  # diffusers only for annotations: importing it costs seconds that stage 1 and GlueGen never need
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

__all__ = ["Branch", "Conditioning", "FrozenSDSampler", "SDComponents", "StepCallback", "StepHook", "guided_noise",
           "initial_latents"]


def guided_noise(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Standard classifier-free guidance (the supplement's Eq. 3 prints a minus sign; it is a typo)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def initial_latents(seed: int, shape: Sequence[int], dtype=torch.float32) -> torch.Tensor:
    """Starting noise for one seed, drawn on the CPU so that a seed means the same image on every device."""
    return torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=dtype)


@dataclass(frozen=True)
class Conditioning:
    """What the UNet is conditioned on for B items: text-encoder states and, for SonicDiffusion's gated layers,
    audio tokens (``None``: the UNet is called without them, so gated layers give their text-only output)."""

    encoder_hidden_states: torch.Tensor  # (B, L, C)
    audio_tokens: torch.Tensor | None = None  # (B, N, C)

    def __len__(self) -> int:
        return self.encoder_hidden_states.shape[0]

    def __getitem__(self, index: slice) -> Conditioning:
        tokens = None if self.audio_tokens is None else self.audio_tokens[index]
        return Conditioning(self.encoder_hidden_states[index], tokens)

    @property
    def cross_attention_kwargs(self) -> dict[str, torch.Tensor] | None:
        return None if self.audio_tokens is None else {"audio_tokens": self.audio_tokens}

    @classmethod
    def cat(cls, parts: Sequence[Conditioning]) -> Conditioning:
        """The items of ``parts`` in order; either all or none carry audio tokens."""
        tokens = [p.audio_tokens for p in parts]
        if len({t is None for t in tokens}) > 1:
            raise ValueError("conditionings with and without audio tokens cannot share a batch")
        return cls(torch.cat([p.encoder_hidden_states for p in parts]),
                   None if tokens[0] is None else torch.cat(tokens))


class Branch(NamedTuple):
    """Items that run ahead of the guided batch in the same UNet call; their outputs are dropped."""

    latents: torch.Tensor  # (S, C, h, w)
    conditioning: Conditioning  # S items


StepHook = Callable[[int], Branch | None]  # before the UNet call of step i
StepCallback = Callable[[int, torch.Tensor], None]  # after step i, with its latents


class SDComponents(Protocol):
    """The frozen SD parts a sampler is built from (:class:`sonic.models.registry.StableDiffusion`)."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: DDIMScheduler


@dataclass(eq=False)
class FrozenSDSampler:
    """A frozen SD-1.x sampled with DDIM and classifier-free guidance: starting noise per seed, the guided loop,
    decoding. The subclasses (SonicPipeline, the competitors' generators) add how they condition the UNet."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler: DDIMScheduler

    @classmethod
    def from_sd(cls, sd: SDComponents, **fields):
        """The components of ``sd`` (:func:`sonic.models.registry.load_stable_diffusion`), plus a subclass's own fields."""
        return cls(unet=sd.unet, vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                   scheduler=sd.scheduler, **fields)

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
        """Latents (B, C, h, w) -> images (B, 3, H, W) in [0, 1] on the CPU."""
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return ((images.float() + 1) / 2).clamp(0, 1).cpu()

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """SD text-encoder last hidden states (B, 77, C)."""
        return encode_prompts(self.text_encoder, self.tokenizer, prompts).to(self.dtype)

    # ---- sampling ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def denoise(
        self,
        latents: torch.Tensor,
        uncond: Conditioning,
        cond: Conditioning,
        num_inference_steps: int,
        guidance_scale: float,
        before_step: StepHook | None = None,
        after_step: StepCallback | None = None,
    ) -> torch.Tensor:
        """DDIM from ``latents`` (B, C, h, w) with guidance of ``cond`` against ``uncond`` (B items each).

        ``before_step(i)`` runs before the UNet call of step ``i`` and may return a :class:`Branch` to run in the
        same call; ``after_step(i, latents)`` runs after the scheduler step.
        """
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        guided = Conditioning.cat([uncond, cond])
        for i, t in enumerate(self.scheduler.timesteps):
            model_input, conditioning = torch.cat([latents, latents]), guided
            branch = None if before_step is None else before_step(i)
            if branch is not None:
                model_input = torch.cat([branch.latents, model_input])
                conditioning = Conditioning.cat([branch.conditioning, guided])
            out = self.unet(model_input, t, conditioning.encoder_hidden_states,
                            cross_attention_kwargs=conditioning.cross_attention_kwargs).sample
            eps_uncond, eps_cond = out[len(out) - 2 * len(latents) :].chunk(2)
            latents = self.scheduler.step(guided_noise(eps_uncond, eps_cond, guidance_scale), t, latents).prev_sample
            if after_step is not None:
                after_step(i, latents)
        return latents

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], uncond: Conditioning, cond: Conditioning, num_inference_steps: int,
               guidance_scale: float, height: int | None = None, width: int | None = None,
               callback: StepCallback | None = None) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1]: item b denoised from the starting noise of ``seeds[b]``;
        ``callback(i, latents)`` after each step."""
        latents = self.start_latents(seeds, self.latent_shape(height, width))
        return self.decode(self.denoise(latents, uncond, cond, num_inference_steps, guidance_scale,
                                        after_step=callback))

    @torch.no_grad()
    def generate(self, audio_embeds: torch.Tensor,
                 conditions: Callable[[torch.Tensor], tuple[Conditioning, Conditioning]], seeds: Sequence[int],
                 num_inference_steps: int, guidance_scale: float, height: int | None, width: int | None,
                 batch_size: int, progress: bool, callback: StepCallback | None = None) -> torch.Tensor:
        """Images (N * S, 3, H, W) in [0, 1] for N audio embeddings (N, d) x S seeds, audio-major, ``batch_size``
        images per batch; ``conditions(embeds)`` gives the (unconditional, conditional) pair of a batch's
        embeddings; ``callback(i, latents)`` after each step of each batch."""
        audio_embeds = torch.as_tensor(audio_embeds)
        if audio_embeds.ndim == 1:
            audio_embeds = audio_embeds[None]
        jobs = [(i, s) for i in range(len(audio_embeds)) for s in seeds]
        outputs = []
        bar = tqdm(total=len(jobs), desc="generate", unit="img", disable=not progress)
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            uncond, cond = conditions(audio_embeds[[i for i, _ in chunk]])
            outputs.append(self.sample([s for _, s in chunk], uncond, cond, num_inference_steps, guidance_scale,
                                       height, width, callback))
            bar.update(len(chunk))
        bar.close()
        return torch.cat(outputs)
