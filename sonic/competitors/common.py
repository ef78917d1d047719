"""What both trained competitors of Table 1 share (docs/competitors.md): input standardisation of the CLAP embedding,
the strict weights format, and text-conditioned generation with SonicPipeline's interface through the same sampler
(:class:`sonic.models.sampling.FrozenSDSampler`: the same starting noise, the same classifier-free guidance).

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

from sonic.models.io import VERSION, WEIGHTS_NAME, write_folder
from sonic.models.sampling import Conditioning, FrozenSDSampler


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
    return write_folder(path, tensors, {"format": fmt, "version": VERSION, "config": config, "metadata": metadata})


def load_modules(path: str | Path, modules: dict[str, nn.Module]) -> None:
    """Load ``model.safetensors`` into ``modules`` strictly: a missing or unexpected key (or a shape mismatch) is an
    error naming the keys."""
    file = Path(path) / WEIGHTS_NAME
    tensors = load_file(str(file))
    unknown = sorted(k for k in tensors if k.split(".", 1)[0] not in modules)
    if unknown:
        raise ValueError(f"{file}: unexpected keys {unknown[:5]}")
    for name, module in modules.items():
        state = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"{file}: {name} weights do not match its config: {err}") from err


# ---- generation --------------------------------------------------------------------------------------------------
class TextConditionedGenerator(FrozenSDSampler):
    """Frozen SD sampled from a per-image text condition (B, 77, C) that a subclass derives from the audio.

    ``__call__`` has :meth:`SonicPipeline.__call__`'s interface and order (audio-major) and samples through the same
    :class:`~sonic.models.sampling.FrozenSDSampler` (the same starting noise, DDIM with classifier-free guidance),
    against the empty prompt."""

    def conditions(self, audio_embeds: torch.Tensor, prompt: str | None) -> torch.Tensor:
        """Text-encoder-space condition (B, 77, C) for a batch of CLAP embeddings (B, d_a)."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, audio_embeds: torch.Tensor, prompt: str | None = None, seeds: Sequence[int] = (0,),
                 num_inference_steps: int = 50, guidance_scale: float = 8.0, height: int | None = None,
                 width: int | None = None, batch_size: int = 8, progress: bool = True) -> torch.Tensor:
        """Images (N * S, 3, H, W) in [0, 1] for N audio embeddings x S seeds, audio-major order."""
        null_text = self.encode_text([""])  # (1, 77, C)

        def conditions(embeds: torch.Tensor) -> tuple[Conditioning, Conditioning]:
            cond = self.conditions(embeds.to(self.device), prompt).to(self.dtype)
            return Conditioning(null_text.expand(len(embeds), -1, -1)), Conditioning(cond)

        return self.generate(audio_embeds, conditions, seeds, num_inference_steps, guidance_scale, height, width,
                             batch_size, progress)
