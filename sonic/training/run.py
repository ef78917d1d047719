"""Entry points of the training rules: one dataset, one variant, explicit files in and out.

``sonic train stage1`` and ``sonic train stage2`` call :func:`stage1` and :func:`stage2`; every setting comes from
the config (``training.*`` with the variant's overrides, see :mod:`sonic.variants`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sonic.config import Config, ConfigError, ProjectorSettings, typed
from sonic.data.tables import read_manifest
from sonic.models import registry
from sonic.models.io import load_projector
from sonic.models.params import projector_config
from sonic.models.projector import build_projector
from sonic.training.data import load_clip_set
from sonic.training.loop import LoopSettings, fingerprint
from sonic.training.stage1 import Stage1Settings, caption_tokens, train_stage1
from sonic.training.stage2 import Stage2Settings, train_stage2

log = logging.getLogger(__name__)


def plan(cfg: Config, variant: str) -> dict:
    """The typed settings a variant trains with: stage1 (None for no_stage1), stage2, projector, placement, loop."""
    r = cfg.variant(variant)
    projector = r["projector"]
    return {
        "stage1": None if r["stage1"] is None else typed(Stage1Settings, r["stage1"], f"{variant}: stage1"),
        "stage2": typed(Stage2Settings, r["stage2"], f"{variant}: stage2"),
        "projector": typed(ProjectorSettings, projector, f"{variant}: projector"),
        "placement": r["adapters"].get("placement", "mid_and_decoder"),
        "loop": cfg.training.loop(),
    }


def scaled_steps(steps: int, budget: float) -> int:
    """The configured ``steps`` times a dataset's ``training.budget`` factor (at least one step)."""
    if budget <= 0:
        raise ConfigError(f"training budget factor must be positive, got {budget}")
    return max(1, round(steps * budget))


def _loop(cfg: Config, variant_plan: dict, steps: int, budget: float = 1.0, progress: bool = True) -> LoopSettings:
    return LoopSettings(steps=scaled_steps(steps, budget), seed=cfg.seed, progress=progress, **variant_plan["loop"])


def stage1(cfg: Config, variant: str, manifest: str, clap: str, clap_index: str, captions: str, out: str,
           budget: float = 1.0) -> dict:
    """Train the stage-1 projector of ``variant`` on the train clips of one dataset (``budget``: factor on the
    configured steps)."""
    p = plan(cfg, variant)
    if p["stage1"] is None:
        raise ConfigError(f"variant {variant!r} has no stage 1 (training.variants.{variant}.stage1 is null)")
    clips = load_clip_set(manifest, clap, clap_index, captions)
    text_encoder, tokenizer = registry.load_text_encoder(cfg)
    proj_cfg = projector_config(cfg, text_encoder.config.hidden_size, p["projector"])
    targets = caption_tokens(text_encoder, tokenizer, clips.captions, proj_cfg.num_tokens)
    loop_settings = _loop(cfg, p, p["stage1"].steps, budget)
    run_id = fingerprint([manifest, clap, clap_index, captions, Path(cfg.models.sd) / "text_encoder"],
                         stage1=p["stage1"], projector=proj_cfg, loop=loop_settings)
    return train_stage1(clips, targets, proj_cfg, p["stage1"], loop_settings, out, run_id)


def stage2(cfg: Config, variant: str, manifest: str, clap: str, clap_index: str, projector: str | None,
           out: str, budget: float = 1.0) -> dict:
    """Tune the adapters (and projector) of ``variant`` on the train clips of one dataset, starting from the
    stage-1 projector folder ``projector`` (None: a fresh projector, the ``no_stage1`` ablation); ``budget``:
    factor on the configured steps."""
    p = plan(cfg, variant)
    if (p["stage1"] is None) != (projector is None):
        raise ConfigError(f"variant {variant!r}: " + ("has no stage 1 but a projector was given" if projector
                                                      else "needs its stage-1 projector (--projector)"))
    clips = load_clip_set(manifest, clap, clap_index)
    sd = registry.load_stable_diffusion(cfg)
    proj_cfg = projector_config(cfg, sd.unet.config.cross_attention_dim, p["projector"])
    if projector is None:
        import torch

        torch.manual_seed(cfg.seed)
        model = build_projector(proj_cfg)
        model.set_input_stats(clips.clap)
    else:
        model = load_projector(projector)
        if model.config != proj_cfg:
            raise ConfigError(f"{projector}: projector {model.config} does not match variant {variant!r} ({proj_cfg})")
    loop_settings = _loop(cfg, p, p["stage2"].steps, budget)
    run_id = fingerprint([manifest, clap, clap_index, cfg.models.sd] + ([projector] if projector else []),
                         stage2=p["stage2"], projector=proj_cfg, placement=p["placement"], loop=loop_settings,
                         resolution=cfg.generation.resolution)
    summary = train_stage2(sd, clips, model, p["placement"], p["stage2"], loop_settings, out,
                           cfg.generation.resolution, run_id=run_id, variant=variant,
                           dataset=Path(manifest).parent.name)
    check = cfg.training.quality_check
    if check:
        summary["quality"] = quality_check(cfg, manifest, clap, clap_index, Path(out), **check)
    return summary


def quality_check(cfg: Config, manifest: str, clap: str, clap_index: str, out: Path, per_class: int = 2,
                  seeds: int = 2, steps: int = 25) -> dict:
    """Images from held-out (val) audio, classified by ``models.clip_eval`` and by SAC's shape classifier fitted on
    the train frames; written to ``<out>/quality.json``."""
    from sonic.metrics.shape import fit_frames
    from sonic.training import quality

    table = read_manifest(manifest)
    if table["label"].isna().all():
        log.warning("stage 2 check skipped: %s has no labels to classify the images by", manifest)
        return {"skipped": "the dataset has no labels"}
    labels = sorted(set(table["label"].astype(str)))
    held_out = load_clip_set(manifest, clap, clap_index, splits=("val",))
    train = table[table["split"] == "train"]
    shape, note = fit_frames(train["frame"].astype(str).tolist(), train["label"].astype(str).tolist(),
                             cfg.generation.resolution)
    result = quality.audio_to_image_accuracy(cfg, out / "weights", held_out, labels, per_class, seeds, steps, shape,
                                             note)
    quality.write(out / "quality.json", result)
    sac = "null" if result["SAC"] is None else f"{result['SAC']:.3f} (on the real frames {result['SAC_real']:.3f})"
    log.info("stage 2 check: held-out audio -> image class accuracy %.3f, SAC %s (chance %.3f)", result["accuracy"],
             sac, result["chance"])
    return result
