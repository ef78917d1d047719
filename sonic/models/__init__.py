"""Model core: audio projector, gated audio cross-attention, generation pipeline, weights I/O."""

from sonic.models.adapters import PRESETS, AudioAdapters, cross_attention_layers, find_adapters, install_adapters
from sonic.models.projector import AudioProjector, ProjectorConfig

__all__ = [
    "PRESETS",
    "AudioAdapters",
    "AudioProjector",
    "ProjectorConfig",
    "cross_attention_layers",
    "find_adapters",
    "install_adapters",
]
