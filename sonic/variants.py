"""Training variants (the paper's ablations) as configuration, and which of them share a stage-1 projector.

A variant is a named entry of ``training.variants`` that overrides parts of the base configuration:
``stage1`` (``null`` = no stage 1, the ``no_stage1`` ablation), ``stage2``, ``projector`` and ``adapters``.
Two variants share their stage-1 projector exactly when everything stage 1 reads is equal: the stage-1
settings, the projector architecture, the audio encoder and the seed. The shared run is named after the first
such variant in the config's order, so the DAG trains it once (paper §3.3, issue "Training").

Pure Python (no torch): ``rules/common.smk`` imports it to lay out the DAG.
"""

from __future__ import annotations

import copy
import json

SECTIONS = ("stage1", "stage2", "projector", "adapters")


def merge(base: dict, override: dict) -> dict:
    """Recursive dict update returning a new dict; a ``None`` override replaces the whole value."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def variant_names(config: dict) -> list[str]:
    return list(((config.get("training") or {}).get("variants") or {"full": {}}).keys())


def resolve(config: dict, variant: str) -> dict:
    """The sections a variant trains with: {"stage1": dict | None, "stage2", "projector", "adapters"}."""
    training = config.get("training") or {}
    variants = training.get("variants") or {"full": {}}
    if variant not in variants:
        raise ValueError(f"training.variants has no variant {variant!r}; configured: {sorted(variants)}")
    override = variants[variant] or {}
    unknown = sorted(set(override) - set(SECTIONS))
    if unknown:
        raise ValueError(f"training.variants.{variant}: unknown sections {unknown} (allowed: {list(SECTIONS)})")
    base = {
        "stage1": training.get("stage1") or {},
        "stage2": training.get("stage2") or {},
        "projector": config.get("projector") or {},
        "adapters": config.get("adapters") or {},
    }
    resolved = merge(base, override)
    if "stage1" in override and override["stage1"] is None:
        resolved["stage1"] = None
    return resolved


def stage1_identity(config: dict, variant: str) -> str | None:
    """A canonical string of everything stage 1 depends on (``None`` when the variant has no stage 1)."""
    r = resolve(config, variant)
    if r["stage1"] is None:
        return None
    key = {
        "stage1": r["stage1"],
        "projector": r["projector"],
        "audio_encoder": config.get("audio_encoder"),
        "seed": config.get("seed"),
    }
    return json.dumps(key, sort_keys=True)


def stage1_runs(config: dict) -> dict[str, str | None]:
    """variant -> name of its stage-1 run (the first variant with the same stage-1 identity), or None."""
    first: dict[str, str] = {}
    out: dict[str, str | None] = {}
    for name in variant_names(config):
        ident = stage1_identity(config, name)
        out[name] = None if ident is None else first.setdefault(ident, name)
    return out
