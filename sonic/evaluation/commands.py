"""Entry points of the evaluation rules (``sonic evaluate <step>``): explicit files in and out, settings from the
config's ``evaluation`` and ``generation`` sections."""

from __future__ import annotations

import logging
from pathlib import Path

from sonic.config import Config, ConfigError

log = logging.getLogger(__name__)

SONIC = "SonicDiffusion"  # the method name of our model in the tables (the full variant)


def sonic_method(variant: str) -> str:
    """Method id of a training variant: ``SonicDiffusion`` for full, ``SonicDiffusion-<variant>`` otherwise."""
    return SONIC if variant == "full" else f"{SONIC}-{variant}"


def variant_of(method: str) -> str | None:
    if method == SONIC:
        return "full"
    if method.startswith(SONIC + "-"):
        return method[len(SONIC) + 1 :]
    return None


def settings(cfg: Config) -> dict:
    """``evaluation`` with defaults: seeds per evaluation clip, DDIM steps (default generation.steps), batch."""
    ev = dict(cfg.raw.get("evaluation") or {})
    ev.setdefault("seeds", 2)
    ev["steps"] = ev.get("steps") or cfg.generation.steps
    ev.setdefault("guidance_scale", cfg.generation.guidance_scale)
    ev.setdefault("batch_size", cfg.generation.batch_size)
    return ev


def load_generator(cfg: Config, method: str, weights: str | Path):
    """A generator with the :class:`~sonic.models.pipeline.SonicPipeline` call interface for ``method``."""
    from sonic import registry

    if variant_of(method) is not None:
        from sonic.models.io import load_weights
        from sonic.models.pipeline import SonicPipeline

        sd = registry.load_stable_diffusion(cfg)
        projector, adapters = load_weights(weights, sd.unet)
        return SonicPipeline(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, projector.eval(), adapters)
    from sonic import competitors

    if method.lower() not in competitors.METHODS:
        raise ConfigError(f"unknown method {method!r}: {SONIC}[-<variant>], AudioToken or GlueGen")
    return competitors.load_generator(cfg, method.lower(), weights)


def references(cfg: Config, manifest: str, out: str, index: str) -> None:
    from sonic.evaluation.references import compute_references

    compute_references(cfg, manifest, out, index)


def _paired(what: str, **lists: list) -> None:
    lengths = {k: len(v) for k, v in lists.items() if v is not None}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"{what}: one of each per method, got " + ", ".join(f"{n} {k}" for k, n in lengths.items()))


def generate(cfg: Config, methods: list[str], weights: list[str], manifest: str, clap: str, clap_index: str,
             outs: list[str]) -> None:
    """Generation runs of one dataset, one per method (``methods[i]`` from ``weights[i]`` into ``outs[i]``), in
    one process: the Table-1 rule generates all trained methods of a dataset together."""
    from sonic.evaluation.runs import eval_jobs, generate_run

    _paired("evaluate generate", method=methods, weights=weights, out=outs)
    ev = settings(cfg)
    jobs = eval_jobs(manifest, ev["seeds"])
    for method, w, out in zip(methods, weights, outs):
        generator = load_generator(cfg, method, w)  # each its own SD: SonicDiffusion installs layers in its UNet
        generate_run(generator, jobs, clap, clap_index, out, method, ev["steps"], ev["guidance_scale"],
                     ev["batch_size"])
        del generator


def score(cfg: Config, methods: list[str], dataset: str, manifest: str, refs: str, refs_index: str,
          images: list[str], outs: list[str], per_image: list[str] | None = None, seeds: int | None = None
          ) -> list[dict]:
    """Score generation runs (``seeds`` = evaluation.seeds) or editing runs (``seeds`` = number of sources; their
    ``structure.json`` is merged into the result) of one dataset, one per method (``images[i]`` of ``methods[i]``
    into ``outs[i]``); the references and evaluation models are loaded once."""
    import json

    from sonic.evaluation.references import load_references
    from sonic.evaluation.score import ScoringModels, score_run
    from sonic.evaluation.tables import EDIT_COLUMNS

    _paired("evaluate score", method=methods, images=images, out=outs, per_image=per_image)
    references = load_references(refs, refs_index)
    models = ScoringModels.load(cfg)
    results = []
    for k, (method, folder, out) in enumerate(zip(methods, images, outs)):
        result = score_run(cfg, manifest, references, folder, method, dataset, out, per_image[k] if per_image else None,
                           seeds or settings(cfg)["seeds"], models)
        variant = variant_of(method)
        if variant is not None:  # the ablation tables key rows by variant
            result["variant"] = variant
        structure = Path(folder) / "structure.json"
        if structure.is_file():
            s = json.loads(structure.read_text())
            result.update({c: s[c] for c in EDIT_COLUMNS if c in s})
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
    return results


def edit(cfg: Config, method: str, weights: str, manifest: str, clap: str, clap_index: str, out: str,
         cache: str) -> None:
    from sonic.editing.runs import edit_run, source_images

    ed = cfg.raw.get("editing") or {}
    sources = source_images(manifest, ed.get("sources"), ed.get("num_sources", 2))
    edit_run(cfg, method, weights, manifest, clap, clap_index, sources, out, cache)


def table(kind: str, scores: list[str], out_csv: str, out_md: str, paper: str | None, title: str = "") -> None:
    from sonic.evaluation.tables import write_table

    write_table(scores, kind, out_csv, out_md, paper, title)


def figures(cfg: Config, weights: str, manifest: str, fig10: str, norms_csv: str, norms_png: str) -> None:
    """Paper Fig. 10 (one source edited along an interpolation between two audios of different classes and along
    a gain sweep) and the supplement's Fig. 3 (gated cross-attention output norms per layer across steps)."""
    import numpy as np

    from sonic import registry
    from sonic.audio import load_audio
    from sonic.data.tables import read_csv
    from sonic.editing.controls import figure10, gate_norms, save_gate_norms
    from sonic.editing.runs import source_images
    from sonic.images import load_images
    from sonic.evaluation.runs import eval_jobs

    pipe = load_generator(cfg, SONIC, weights)
    pipe.audio_encoder = registry.load_audio_encoder(cfg)
    jobs = eval_jobs(manifest, 1).drop_duplicates("label")
    if len(jobs) < 2:
        raise ValueError(f"{manifest}: the sound-control figure needs evaluation clips of two classes")
    audio = dict(zip(read_csv(manifest)["clip_id"].astype(str), read_csv(manifest)["audio"].astype(str)))
    waves = [load_audio(audio[c], pipe.audio_encoder.sample_rate) for c in jobs["clip_id"][:2]]
    ed = cfg.raw.get("editing") or {}
    steps = ed.get("steps") or cfg.generation.steps
    source = load_images([str(source_images(manifest, ed.get("sources"), 1)[0])], cfg.generation.resolution)[0]
    figure10(pipe, source, waves[0], waves[1], fig10, num_inference_steps=steps,
             guidance_scale=ed.get("guidance_scale") or cfg.generation.guidance_scale,
             batch_size=cfg.generation.batch_size)
    embeds = pipe.embed_audio([np.asarray(w) for w in waves])
    rows = gate_norms(pipe, embeds, num_inference_steps=steps, guidance_scale=cfg.generation.guidance_scale)
    save_gate_norms(rows, norms_csv, norms_png)
