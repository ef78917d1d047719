"""Model core: audio projector, gated audio cross-attention, generation pipeline, weights I/O.

The names below are resolved on first use, so ``import sonic.models.audio_encoder`` (feature extraction, scoring)
does not pay for importing diffusers.
"""

import importlib

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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sonic.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
