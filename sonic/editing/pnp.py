"""Audio-guided image editing with Plug-and-Play feature injection (Tumanyan et al. 2023; paper §3.5; supp. §3.2).

At every DDIM step the *source branch* (the inverted latent of that step, empty prompt) runs in the same UNet batch
as the guided target branches, ``[source; uncond x K; cond x K]``. While a step lies in the first ``f_t`` fraction
of the schedule, the **residual branch** of the chosen decoder residual blocks (default ``up_blocks[1].resnets[1]``,
the paper's residual block 4) is replaced, for every target item, by the source's: the output of the block's
``conv2``, before the block adds its own shortcut of its input, as pnp-diffusers and the authors' code inject it.
The block's output for a target is thus ``(shortcut(target input) + source residual) / output_scale_factor``, so
what the layers before it contributed to the target (the mid and up3 audio layers) survives. Within the first
``attn_t`` fraction the self-attention queries and keys (``attn1.to_q`` / ``attn1.to_k``) of decoder layers 4-11
are replaced likewise. Once neither injection is active the source branch is left out of the batch. Everything is
done by removable forward hooks owned by :class:`PnPController`, which knows the current step.

The source branch runs the base UNet (``source_branch="base"``, the default, paper §3.5: the gated audio terms are
zeroed for the source item) or, as the authors' ``pnp.py`` does, the adapted UNet with the null audio
(``"null_audio"``). The denoising loop is the shared sampler's (:meth:`FrozenSDSampler.denoise`); the source
branch joins its UNet calls through the per-step hook :meth:`PnPController.source_branch`.

What the K targets are conditioned on is an :class:`EditConditions`: :class:`AudioConditions` (SonicDiffusion, audio
through the adapters, optionally with a prompt) or :class:`TextConditions` (text-encoder states on a UNet without
audio: text-only Plug-and-Play, the "PnP with the class label as prompt" baseline, and the AudioToken and GlueGen
editing baselines, whose audio condition lives in the text-encoder space).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from sonic.config import EditingConfig
from sonic.editing.inversion import Inversion, InversionCache, invert
from sonic.models.adapters import cross_attention_layers
from sonic.models.pipeline import adapter_beta
from sonic.models.sampling import Branch, Conditioning, FrozenSDSampler, StepCallback, StepHook

if TYPE_CHECKING:
    from sonic.models.adapters import AudioAdapters
    from sonic.models.pipeline import SonicPipeline

DECODER_QK_LAYERS = tuple(f"up{i}" for i in range(4, 12))
SOURCE_BRANCHES = ("base", "null_audio")


_EDITING = EditingConfig()  # the config's defaults of the injection (one place: sonic.config)


@dataclass(frozen=True)
class PnPConfig:
    """Injection schedule and sites. ``resnets``: (up block, resnet) indices, or paper decoder layer numbers
    (4 = ``up_blocks[1].resnets[1]``, the paper's; the authors' code injects 4 and 5, ``(4, 5)``; the supplement's
    "residual blocks 4-6" is ``(4, 5, 6)``). ``source_branch``: ``"base"`` (adapters off, paper §3.5) or
    ``"null_audio"`` (the adapted UNet with the null audio, the authors' ``pnp.py``)."""

    f_t: float = _EDITING.f_t
    attn_t: float = _EDITING.attn_t
    resnets: tuple[int | tuple[int, int], ...] = ((1, 1),)  # editing.resnets: null
    attn_layers: tuple[str, ...] = DECODER_QK_LAYERS
    source_branch: str = _EDITING.source_branch

    @classmethod
    def from_settings(cls, editing: EditingConfig) -> PnPConfig:
        """The injection of the config's ``editing`` section (``resnets: null`` = the default site)."""
        return cls(f_t=editing.f_t, attn_t=editing.attn_t, resnets=editing.resnets or cls.resnets,
                   source_branch=editing.source_branch)

    def __post_init__(self) -> None:
        for name in ("f_t", "attn_t"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PnPConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.source_branch not in SOURCE_BRANCHES:
            raise ValueError(f"PnPConfig.source_branch must be one of {SOURCE_BRANCHES}, got {self.source_branch!r}")


def decoder_resnets(unet: nn.Module, sites: Sequence[int | tuple[int, int]]) -> list[nn.Module]:
    """Residual blocks of the decoder by (block, resnet) or by paper decoder number (counting every resnet of
    ``up_blocks`` in order, so 3-5 are ``up_blocks[1]``, as the adapters' layer names count)."""
    flat = [(b, r) for b, block in enumerate(unet.up_blocks) for r in range(len(block.resnets))]
    out = []
    for site in sites:
        if isinstance(site, int):
            b, r = flat[site] if 0 <= site < len(flat) else (-1, -1)
        else:
            b, r = site
        if (b, r) not in flat:
            raise ValueError(f"no decoder residual block {site!r}; the decoder has {len(flat)}: {flat}")
        out.append(unet.up_blocks[b].resnets[r])
    return out


def self_attention_projections(unet: nn.Module, layers: Sequence[str]) -> list[nn.Module]:
    """``attn1.to_q`` and ``attn1.to_k`` of every transformer block of the named decoder layers."""
    available = cross_attention_layers(unet)
    missing = [n for n in layers if n not in available]
    if missing:
        raise ValueError(f"UNet has no attention layer(s) {missing}; it has {list(available)}")
    return [getattr(block.attn1, proj) for n in layers for block in available[n].transformer_blocks
            for proj in ("to_q", "to_k")]


class PnPController:
    """The injection schedule and its hooks. The denoising loop calls :meth:`set_step` before each UNet call; the
    hooks exist only inside :meth:`hooks` and are removed on exit, also after an error."""

    def __init__(self, unet: nn.Module, config: PnPConfig, num_steps: int, adapters=None):
        self.config = config
        self.num_steps = num_steps
        self.step = 0
        self.source_in_batch = False
        # The residual branch of each block ends in its conv2; the block adds its shortcut afterwards.
        self._residuals = [block.conv2 for block in decoder_resnets(unet, config.resnets)]
        self._projections = self_attention_projections(unet, config.attn_layers)
        # Gated audio modules: with the base source branch their output is zeroed for the source item, so the
        # source runs adapters-off; with the null-audio branch it runs the adapted UNet on the null tokens.
        neutral = adapters is not None and config.source_branch == "base"
        self._audio = [m for _, m in adapters.modules()] if neutral else []

    # ---- schedule ----------------------------------------------------------------------------------------------
    def _within(self, fraction: float) -> bool:
        return self.step < int(fraction * self.num_steps)

    @property
    def inject_features(self) -> bool:
        return self._within(self.config.f_t)

    @property
    def inject_attention(self) -> bool:
        return self._within(self.config.attn_t)

    @property
    def needs_source(self) -> bool:
        """Whether the source branch must run at the current step."""
        return self.inject_features or self.inject_attention

    def set_step(self, step: int, source_in_batch: bool | None = None) -> bool:
        """Enter ``step``; the source branch joins the batch when an injection needs it (or as told). Returns
        whether it does."""
        self.step = step
        self.source_in_batch = self.needs_source if source_in_batch is None else source_in_batch
        return self.source_in_batch

    def source_branch(self, trajectory: torch.Tensor, conditioning: Conditioning) -> StepHook:
        """The sampler's per-step hook: enter the step and, while an injection needs it, run the source item
        (``conditioning``, one item) ahead of the targets, at the noise level of the step. ``trajectory``
        (T + 1, C, h, w) is ordered like :attr:`Inversion.latents`."""

        def before_step(i: int) -> Branch | None:
            if not self.set_step(i):
                return None
            # trajectory[T - i] is the inverted latent at the noise level of timesteps[i]
            return Branch(trajectory[self.num_steps - i][None], conditioning)

        return before_step

    # ---- hooks -------------------------------------------------------------------------------------------------
    def _replace(self, active: Callable[[], bool]):
        def hook(module: nn.Module, args, output: torch.Tensor):
            if not (self.source_in_batch and active()):
                return None
            return output[:1].expand_as(output).contiguous()  # (B, ...): every item <- the source item 0

        return hook

    def _neutral_source(self, module: nn.Module, args, output: torch.Tensor):
        if not self.source_in_batch:
            return None
        out = output.clone()  # (B, N, C) gated audio term
        out[:1] = 0
        return out

    @contextlib.contextmanager
    def hooks(self) -> Iterator["PnPController"]:
        handles: list[RemovableHandle] = []
        try:
            handles += [m.register_forward_hook(self._replace(lambda: self.inject_features)) for m in self._residuals]
            handles += [m.register_forward_hook(self._replace(lambda: self.inject_attention))
                        for m in self._projections]
            handles += [m.register_forward_hook(self._neutral_source) for m in self._audio]
            yield self
        finally:
            for h in handles:
                h.remove()
            self.source_in_batch = False


# ---- what the targets are conditioned on ------------------------------------------------------------------------
class EditConditions(Protocol):
    """The K targets of an edit. ``adapters``: the gated audio layers the targets use (``None``: a UNet without
    audio), which the base source branch switches off and ``beta`` scales."""

    adapters: AudioAdapters | None

    def __len__(self) -> int: ...

    def unconditional(self, n: int) -> Conditioning:
        """The null condition of ``n`` items (the source branch and the unconditional halves)."""
        ...

    def conditional(self, start: int, stop: int) -> Conditioning:
        """The condition of targets ``start`` .. ``stop - 1``."""
        ...


class AudioConditions:
    """K CLAP embeddings (K, d) through a SonicPipeline's adapters, with an optional prompt (paper §3.5)."""

    def __init__(self, pipe: SonicPipeline, audio_embeds: torch.Tensor, prompt: str | None = None):
        embeds = torch.as_tensor(audio_embeds)
        self.embeds = embeds[None] if embeds.ndim == 1 else embeds
        self.pipe, self.adapters = pipe, pipe.adapters
        self.text, self.null_text = pipe.encode_text([prompt or ""]), pipe.encode_text([""])  # (1, 77, C)

    def __len__(self) -> int:
        return len(self.embeds)

    def unconditional(self, n: int) -> Conditioning:
        return self.pipe.unconditional(n, self.null_text)

    def conditional(self, start: int, stop: int) -> Conditioning:
        return self.pipe.conditional(self.embeds[start:stop], self.text)


class TextConditions:
    """K text-encoder-space conditions ``states`` (K, 77, C) on ``model``'s UNet without audio, guided against the
    empty prompt: text-only Plug-and-Play and the AudioToken and GlueGen editing baselines."""

    adapters = None

    def __init__(self, model: FrozenSDSampler, states: torch.Tensor):
        self.states = states.to(model.device, model.dtype)
        self.null_text = model.encode_text([""])  # (1, 77, C)

    def __len__(self) -> int:
        return len(self.states)

    def unconditional(self, n: int) -> Conditioning:
        return Conditioning(self.null_text.expand(n, -1, -1))

    def conditional(self, start: int, stop: int) -> Conditioning:
        return Conditioning(self.states[start:stop])


# ---- editing ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def edit_latents(
    model: FrozenSDSampler,
    inversion: Inversion,
    conditions: EditConditions,
    guidance_scale: float = 8.0,
    config: PnPConfig = PnPConfig(),
    beta: float | Mapping[str, float] = 1.0,
    batch_size: int = 8,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Final latents (K, C, h, w) of the K edits of ``conditions`` of one inverted source.

    Uses as many DDIM steps as the inversion has. ``beta`` sets the strength of ``conditions.adapters``.
    ``callback(step, latents)`` runs after each step.
    """
    steps = inversion.num_steps
    source = inversion.latents.to(model.device, model.dtype)  # (T + 1, C, h, w)
    controller = PnPController(model.unet, config, steps, conditions.adapters)
    strength = contextlib.nullcontext() if conditions.adapters is None else adapter_beta(conditions.adapters, beta)
    outputs = []
    with strength, controller.hooks():
        for start in range(0, len(conditions), batch_size):
            b = min(batch_size, len(conditions) - start)
            null = conditions.unconditional(b + 1)  # the source branch, then b unconditional halves
            z = source[steps][None].expand(b, -1, -1, -1).clone()  # (b, C, h, w), x_T
            outputs.append(model.denoise(z, null[1:], conditions.conditional(start, start + b), steps,
                                         guidance_scale, before_step=controller.source_branch(source, null[:1]),
                                         after_step=callback))
    return torch.cat(outputs)


@torch.no_grad()
def edit(
    model: FrozenSDSampler,
    source_image,
    audio_embeds: torch.Tensor | None = None,
    prompt: str | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 8.0,
    f_t: float = 0.8,
    attn_t: float = 0.5,
    beta: float | Mapping[str, float] = 1.0,
    cache: InversionCache | None = None,
    config: PnPConfig | None = None,
    inversion: Inversion | None = None,
    height: int | None = None,
    width: int | None = None,
    batch_size: int = 8,
    callback: StepCallback | None = None,
    conditions: EditConditions | None = None,
) -> torch.Tensor:
    """Edit one source image K times -> images (K, 3, H, W) in [0, 1] (paper §3.5).

    The targets are ``conditions``, or else K audio embeddings (K, d) with an optional ``prompt`` through the
    SonicPipeline ``model`` (:class:`AudioConditions`), or else the ``prompt`` alone (text-only Plug-and-Play,
    :class:`TextConditions`). One inversion serves all K edits (and, through ``cache``, later calls). ``config``
    overrides ``f_t``/``attn_t`` and sets the injection sites.
    """
    if conditions is None:
        conditions = (TextConditions(model, model.encode_text([prompt or ""])) if audio_embeds is None
                      else AudioConditions(model, audio_embeds, prompt))
    elif audio_embeds is not None or prompt is not None:
        raise ValueError("give conditions, or audio_embeds and prompt, not both")
    if config is None:
        config = PnPConfig(f_t=f_t, attn_t=attn_t)
    if inversion is None:
        inversion = invert(model, source_image, num_inference_steps, cache, height, width)
    elif inversion.num_steps != num_inference_steps:
        raise ValueError(f"the inversion has {inversion.num_steps} steps, not {num_inference_steps}")
    latents = edit_latents(model, inversion, conditions, guidance_scale, config, beta, batch_size, callback)
    return model.decode(latents)
