"""Model core: audio projector, gated audio cross-attention, generation pipeline, weights I/O.

The names below are resolved on first use, so ``import sonic.models.audio_encoder`` (feature extraction, scoring)
does not pay for importing diffusers.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "PRESETS": "sonic.models.adapters",
    "AudioAdapters": "sonic.models.adapters",
    "cross_attention_layers": "sonic.models.adapters",
    "find_adapters": "sonic.models.adapters",
    "install_adapters": "sonic.models.adapters",
    "AudioProjector": "sonic.models.projector",
    "ProjectorConfig": "sonic.models.projector",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
