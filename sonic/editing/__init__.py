"""Audio-guided image editing: DDIM inversion + Plug-and-Play injection (paper §3.5; supp. §3.2).

The names below are resolved on first use, so ``sonic edit --help`` (and every other command, whose parsers the
CLI builds together) does not pay for importing torch and diffusers.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "Inversion": "sonic.editing.inversion",
    "InversionCache": "sonic.editing.inversion",
    "ddim_invert": "sonic.editing.inversion",
    "invert": "sonic.editing.inversion",
    "model_identity": "sonic.editing.inversion",
    "reconstruct": "sonic.editing.inversion",
    "reconstruction_error": "sonic.editing.inversion",
    "PnPConfig": "sonic.editing.pnp",
    "PnPController": "sonic.editing.pnp",
    "edit": "sonic.editing.pnp",
    "edit_latents": "sonic.editing.pnp",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
