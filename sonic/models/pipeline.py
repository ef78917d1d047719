"""Audio-conditioned generation with a frozen SD-1.x (paper §3.6; supp. Eq. 3 and §3.2).

DDIM sampling (:class:`~sonic.models.sampling.FrozenSDSampler`) with classifier-free guidance over the *joint*
condition (paper §3.6):

    eps = eps(null_text, null_audio) + w * (eps(text, audio) - eps(null_text, null_audio))

``null_text`` is the empty prompt, ``null_audio`` the projector applied to a zero CLAP embedding. Without a
prompt, the conditional branch uses the empty prompt too (as in stage-2 training), so guidance acts on audio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sonic.models.audio_encoder import AudioEncoder
from sonic.models.io import load_weights
from sonic.models.projector import AudioProjector
from sonic.models.sampling import Conditioning, FrozenSDSampler, SDComponents, StepCallback

if TYPE_CHECKING:
    from sonic.models.adapters import AudioAdapters

__all__ = ["SonicPipeline", "adapter_beta", "interpolate_embeddings"]


def interpolate_embeddings(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Linear interpolation of two CLAP embeddings (paper Fig. 10a): alpha=0 gives ``a``, 1 gives ``b``."""
    return (1.0 - alpha) * a + alpha * b


@contextlib.contextmanager
def adapter_beta(adapters: AudioAdapters, beta: float | Mapping[str, float]) -> Iterator[None]:
    """Temporarily set the adapters' inference strength (one value or per layer)."""
    saved = adapters.get_beta()
    adapters.set_beta(beta)
    try:
        yield
    finally:
        adapters.set_beta(saved)


@dataclass(eq=False)
class SonicPipeline(FrozenSDSampler):
    projector: AudioProjector
    adapters: AudioAdapters
    audio_encoder: AudioEncoder | None = None

    @classmethod
    def from_weights(cls, weights_dir: str | Path, sd: SDComponents,
                     audio_encoder: AudioEncoder | None = None) -> SonicPipeline:
        """SonicDiffusion weights (:func:`~sonic.models.io.load_weights`) on the frozen SD ``sd``
        (:func:`sonic.models.registry.load_stable_diffusion`); the gated layers are installed into ``sd.unet``."""
        projector, adapters = load_weights(weights_dir, sd.unet)
        return cls.from_sd(sd, projector=projector.eval(), adapters=adapters, audio_encoder=audio_encoder)

    # ---- conditions -------------------------------------------------------------------------------------------
    def embed_audio(self, waveforms: Sequence[np.ndarray], gain_db: float = 0.0) -> torch.Tensor:
        if self.audio_encoder is None:
            raise RuntimeError("this pipeline has no audio encoder; pass CLAP embeddings instead of waveforms")
        return self.audio_encoder.embed(waveforms, gain_db=gain_db)

    def audio_tokens(self, audio_embeds: torch.Tensor) -> torch.Tensor:
        return self.projector(audio_embeds.to(self.device, self.dtype))

    def unconditional(self, n: int, null_text: torch.Tensor) -> Conditioning:
        """The null condition of ``n`` items: the empty prompt's states ``null_text`` (1, 77, C), the null audio."""
        return Conditioning(null_text.expand(n, -1, -1), self.projector.null_tokens(n))

    def conditional(self, audio_embeds: torch.Tensor, text: torch.Tensor) -> Conditioning:
        """CLAP embeddings (B, d) with the prompt's states ``text`` (1, 77, C)."""
        return Conditioning(text.expand(len(audio_embeds), -1, -1), self.audio_tokens(audio_embeds))

    def beta(self, beta: float | Mapping[str, float]) -> contextlib.AbstractContextManager[None]:
        """Temporarily set the adapters' inference strength (one value or per layer)."""
        return adapter_beta(self.adapters, beta)

    # ---- sampling ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, audio_embeds: torch.Tensor, prompt: str | None = None, seeds: Sequence[int] = (0,),
                 num_inference_steps: int = 50, guidance_scale: float = 8.0,
                 beta: float | Mapping[str, float] = 1.0, height: int | None = None, width: int | None = None,
                 batch_size: int = 8, progress: bool = True, callback: StepCallback | None = None) -> torch.Tensor:
        """Images (N * S, 3, H, W) in [0, 1] for N audio embeddings x S seeds, audio-major order;
        ``callback(i, latents)`` after each DDIM step of each batch (the app's progress)."""
        text = self.encode_text([prompt or ""])
        null_text = self.encode_text([""])

        def conditions(embeds: torch.Tensor) -> tuple[Conditioning, Conditioning]:
            return self.unconditional(len(embeds), null_text), self.conditional(embeds, text)

        with self.beta(beta):
            return self.generate(audio_embeds, conditions, seeds, num_inference_steps, guidance_scale, height, width,
                                 batch_size, progress, callback)
