"""Audio-guided image editing: DDIM inversion + Plug-and-Play injection (paper §3.5; supp. §3.2).

The names below are resolved on first use, so ``sonic edit --help`` (and every other command, whose parsers the
CLI builds together) does not pay for importing torch and diffusers.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "sonic.editing.inversion": (
        "Inversion", "InversionCache", "ddim_invert", "invert", "model_identity", "reconstruct", "reconstruction_error",
    ),
    "sonic.editing.pnp": ("PnPConfig", "PnPController", "edit", "edit_latents"),
}

__all__ = sorted(name for names in _LAZY.values() for name in names)


__getattr__ = lazy_attributes(__name__, _LAZY)
