"""Audio-guided image editing: DDIM inversion + Plug-and-Play injection (paper §3.5; supp. §3.2; paper §3.5)."""

from sonic.editing.inversion import (
    Inversion,
    InversionCache,
    ddim_invert,
    invert,
    model_identity,
    reconstruct,
    reconstruction_error,
)
from sonic.editing.pnp import PnPConfig, PnPController, edit, edit_latents

__all__ = [
    "Inversion",
    "InversionCache",
    "PnPConfig",
    "PnPController",
    "ddim_invert",
    "edit",
    "edit_latents",
    "invert",
    "model_identity",
    "reconstruct",
    "reconstruction_error",
]
