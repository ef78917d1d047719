"""The method ids of the tables, defined once for the package and the workflow (plain Python, no torch).

``SonicDiffusion`` is the full variant, ``SonicDiffusion-<variant>`` an ablation variant of ``training.variants``;
the trained competitors run on the same frozen SD; ``PnP`` (text-only Plug-and-Play) is a Table 2 baseline.
"""

from __future__ import annotations

SONIC = "SonicDiffusion"
COMPETITORS = ("AudioToken", "GlueGen")  # trained here (sonic.competitors), on the same frozen SD and CLAP cache
TABLE1_TRAINED = (SONIC,) + COMPETITORS  # Table 1's methods generated here (plus evaluation.external's)
EDIT_METHODS = (SONIC, "PnP") + COMPETITORS  # Table 2
ABLATION_VARIANTS = {  # the variants of each ablation table, as in the paper
    "table3": ("full", "no_contrastive", "no_mse"),
    "table4": ("full", "no_stage1", "projector_frozen_stage2", "single_token"),
    "tableS1": ("full", "decoder_6_11", "all_layers"),
}


def sonic_method(variant: str) -> str:
    """Method id of a training variant: ``SonicDiffusion`` for full, ``SonicDiffusion-<variant>`` otherwise."""
    return SONIC if variant == "full" else f"{SONIC}-{variant}"


def variant_of(method: str) -> str | None:
    """The training variant behind a method id (None for a competitor or an external system)."""
    if method == SONIC:
        return "full"
    if method.startswith(SONIC + "-"):
        return method[len(SONIC) + 1:]
    return None


def competitor_key(method: str) -> str:
    """``AudioToken`` -> ``audiotoken``: the competitor's key in ``competitors`` and its ``sonic train`` stage."""
    return method.lower()
