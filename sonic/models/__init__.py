"""Model core: audio projector, gated audio cross-attention, generation pipeline, weights I/O.

The names below are resolved on first use, so ``import sonic.models.audio_encoder`` (feature extraction, scoring)
does not pay for importing diffusers.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "sonic.models.adapters": (
        "PRESETS", "AudioAdapters", "cross_attention_layers", "find_adapters", "install_adapters",
    ),
    "sonic.models.projector": ("AudioProjector", "ProjectorConfig"),
}

__all__ = sorted(name for names in _LAZY.values() for name in names)


__getattr__ = lazy_attributes(__name__, _LAZY)
