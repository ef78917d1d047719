"""Installing gated audio cross-attention into an unmodified diffusers ``UNet2DConditionModel`` (paper Eq. 6-9).

Layer numbering follows the paper (supp. §3.1): the 16 text cross-attention layers of SD-1.x are named
``down0``..``down5`` (``down_blocks[0..2]``, two each), ``mid``, and ``up3``..``up11`` (``up_blocks[1]`` =
3, 4, 5; ``up_blocks[2]`` = 6, 7, 8; ``up_blocks[3]`` = 9, 10, 11). Decoder numbers count every layer of the
decoder, including the three of ``up_blocks[0]`` that have no attention, as Plug-and-Play does.

Adapters are attached with ``setattr`` on the transformer blocks and removed the same way; no diffusers
source is copied or edited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from sonic.models.gated_attention import GatedCrossAttention

PRESETS: dict[str, tuple[str, ...]] = {
    "mid_and_decoder": ("mid",) + tuple(f"up{i}" for i in range(3, 12)),
    "decoder_6_11": tuple(f"up{i}" for i in range(6, 12)),
    "all_layers": tuple(f"down{i}" for i in range(6)) + ("mid",) + tuple(f"up{i}" for i in range(3, 12)),
}


def cross_attention_layers(unet: UNet2DConditionModel) -> dict[str, nn.Module]:
    """Map paper layer names to the ``Transformer2DModel`` holding that text cross-attention layer."""
    layers: dict[str, nn.Module] = {}
    index = 0
    for block in unet.down_blocks:
        for attn in getattr(block, "attentions", None) or []:
            layers[f"down{index}"] = attn
            index += 1
    for j, attn in enumerate(getattr(unet.mid_block, "attentions", None) or []):
        layers["mid" if j == 0 else f"mid{j}"] = attn
    offset = 0
    for block in unet.up_blocks:
        for j, attn in enumerate(getattr(block, "attentions", None) or []):
            layers[f"up{offset + j}"] = attn
        offset += len(block.resnets)
    return layers


def resolve_layers(unet: UNet2DConditionModel, layers: str | Iterable[str]) -> list[str]:
    """A preset name or an explicit list of layer names -> validated list of layer names."""
    available = cross_attention_layers(unet)
    if isinstance(layers, str):
        if layers not in PRESETS:
            raise ValueError(f"unknown adapter placement {layers!r}; presets: {sorted(PRESETS)}")
        names = list(PRESETS[layers])
    else:
        names = list(layers)
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"UNet has no cross-attention layer(s) {missing}; it has {list(available)}")
    return names


def _transformer_blocks(transformer: nn.Module) -> Iterator[nn.Module]:
    yield from transformer.transformer_blocks


class _QuietAudioKwargs(logging.Filter):
    """Drop diffusers' per-call warning that plain attention processors ignore ``audio_tokens``.

    ``audio_tokens`` travels in ``cross_attention_kwargs`` and so reaches every attention module of the
    UNet; only the gated layers use it, the others ignore it by design.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("cross_attention_kwargs ['audio_tokens'] are not expected"))


_QUIET = _QuietAudioKwargs()
logging.getLogger("diffusers.models.attention_processor").addFilter(_QUIET)


class AudioAdapters:
    """Handle on the gated layers installed in one UNet: parameters, state dict, beta, removal."""

    def __init__(self, unet: UNet2DConditionModel, layers: dict[str, list[GatedCrossAttention]]):
        self.unet = unet
        self.layers = layers

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    def modules(self) -> Iterator[tuple[str, nn.Module]]:
        for name, gated in self.layers.items():
            for i, g in enumerate(gated):
                yield (name if len(gated) == 1 else f"{name}.{i}"), g.audio

    def parameters(self) -> Iterator[nn.Parameter]:
        for _, m in self.modules():
            yield from m.parameters()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{k}": v for name, m in self.modules() for k, v in m.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Strict: a missing or unexpected key, or a shape mismatch, is an error."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"adapter weights do not match the installed layers: missing {missing}, unexpected {unexpected}")
        for name, m in self.modules():
            prefix = f"{name}."
            m.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)

    def gates(self) -> dict[str, float]:
        """tanh(gamma) per layer (diagnostics)."""
        return {name: float(torch.tanh(m.gamma.detach())) for name, m in self.modules()}

    def set_beta(self, beta: float | Mapping[str, float]) -> None:
        """One strength for all layers, or a mapping layer name -> strength (others keep theirs)."""
        if isinstance(beta, Mapping):
            unknown = sorted(set(beta) - set(self.layers))
            if unknown:
                raise ValueError(f"beta given for layers without adapters: {unknown}; adapters: {self.names}")
            items = beta.items()
        else:
            items = ((name, beta) for name in self.layers)
        for name, value in items:
            for g in self.layers[name]:
                g.beta = float(value)

    def get_beta(self) -> dict[str, float]:
        return {name: gated[0].beta for name, gated in self.layers.items()}

    def remove(self) -> None:
        """Restore the UNet's original ``norm2``/``attn2`` modules."""
        available = cross_attention_layers(self.unet)
        for name in self.layers:
            for block in _transformer_blocks(available[name]):
                detach_from_block(block)
        self.layers = {}


def attach_to_block(block: nn.Module, name: str) -> GatedCrossAttention:
    """Put a gated layer into one diffusers ``BasicTransformerBlock``: it takes over ``attn2`` and ``norm2``."""
    if getattr(block, "norm_type", None) != "layer_norm" or getattr(block, "attn2", None) is None:
        raise ValueError(f"layer {name}: only layer-norm transformer blocks with text cross-attention are supported")
    if getattr(block, "pos_embed", None) is not None:
        raise ValueError(f"layer {name}: blocks with positional embeddings are not supported")
    gated = GatedCrossAttention(block.norm2, block.attn2, name)
    block.norm2 = nn.Identity()
    block.attn2 = gated
    return gated


def detach_from_block(block: nn.Module) -> None:
    gated = block.attn2
    if not isinstance(gated, GatedCrossAttention):
        raise ValueError("this transformer block has no gated audio layer")
    block.norm2 = gated.text_norm
    block.attn2 = gated.text_attn


def install_adapters(unet: UNet2DConditionModel, layers: str | Iterable[str] = "mid_and_decoder") -> AudioAdapters:
    """Attach gated audio cross-attention to the chosen layers of ``unet`` (in place) and return a handle."""
    if find_adapters(unet):
        raise RuntimeError("this UNet already has audio adapters installed; remove them first")
    names = resolve_layers(unet, layers)
    available = cross_attention_layers(unet)
    installed: dict[str, list[GatedCrossAttention]] = {}
    for name in names:
        installed[name] = [attach_to_block(block, name) for block in _transformer_blocks(available[name])]
    dtype = next(unet.parameters()).dtype
    device = next(unet.parameters()).device
    handle = AudioAdapters(unet, installed)
    for _, m in handle.modules():
        m.to(device=device, dtype=dtype)
    return handle


def find_adapters(unet: UNet2DConditionModel) -> AudioAdapters | None:
    """The handle on adapters already installed in ``unet``, or None."""
    layers: dict[str, list[GatedCrossAttention]] = {}
    for name, transformer in cross_attention_layers(unet).items():
        gated = [b.attn2 for b in _transformer_blocks(transformer) if isinstance(b.attn2, GatedCrossAttention)]
        if gated:
            layers[name] = gated
    return AudioAdapters(unet, layers) if layers else None
