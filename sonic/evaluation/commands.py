"""Entry points of the evaluation rules (``sonic evaluate <step>``): explicit files in and out, settings from the
config's ``evaluation`` and ``generation`` sections."""

from __future__ import annotations

import logging
from pathlib import Path

from sonic.config import Config, ConfigError
from sonic.errors import InputError
from sonic.methods import RELEASE, SONIC, is_sonic, variant_of

log = logging.getLogger(__name__)

def load_generator(cfg: Config, method: str, weights: str | Path):
    """A generator with the :class:`~sonic.models.pipeline.SonicPipeline` call interface for ``method``."""
    from sonic.models import registry

    if is_sonic(method):
        from sonic.models.pipeline import SonicPipeline

        return SonicPipeline.from_weights(weights, registry.load_stable_diffusion(cfg))
    from sonic import competitors

    if method.lower() not in competitors.METHODS:
        raise ConfigError(f"unknown method {method!r}: {SONIC}[-<variant>], {RELEASE}, AudioToken or GlueGen")
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
    ev = cfg.eval_settings()
    jobs = eval_jobs(manifest, ev.seeds)
    for method, w, out in zip(methods, weights, outs):
        generator = load_generator(cfg, method, w)  # each its own SD: SonicDiffusion installs layers in its UNet
        generate_run(generator, jobs, clap, clap_index, out, method, ev.steps, ev.guidance_scale, ev.batch_size)
        del generator


def score(cfg: Config, methods: list[str], dataset: str, manifest: str, refs: str, refs_index: str,
          images: list[str], outs: list[str], per_image: list[str] | None = None, seeds: int | None = None
          ) -> list[dict]:
    """Score generation runs (``seeds`` = evaluation.seeds) or editing runs (``seeds`` = number of sources; their
    ``structure.json`` is merged into the result) of one dataset, one per method (``images[i]`` of ``methods[i]``
    into ``outs[i]``); the references and evaluation models are loaded once."""
    import json

    from sonic.evaluation.edits import source_shape_accuracy
    from sonic.evaluation.references import load_references
    from sonic.evaluation.score import ScoringModels, score_run
    from sonic.evaluation.tables import EDIT_COLUMNS

    _paired("evaluate score", method=methods, images=images, out=outs, per_image=per_image)
    references = load_references(refs, refs_index)
    models = ScoringModels.load(cfg)
    results = []
    for k, (method, folder, out) in enumerate(zip(methods, images, outs)):
        result = score_run(cfg, manifest, references, folder, method, dataset, out, per_image[k] if per_image else None,
                           seeds, models)
        variant = variant_of(method)
        if variant is not None:  # the ablation tables key rows by variant
            result["variant"] = variant
        structure = Path(folder) / "structure.json"
        if structure.is_file():
            s = json.loads(structure.read_text())
            result.update({c: s[c] for c in EDIT_COLUMNS if c in s})
            result["source_SAC"] = source_shape_accuracy(references.shape, folder, cfg.generation.resolution)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
        results.append(result)
    return results


def edit(cfg: Config, method: str, weights: str | None, manifest: str, clap: str, clap_index: str, out: str,
         inversions: str) -> None:
    """One method's editing run of one dataset, from the inversions of :func:`invert` (read-only)."""
    from sonic.evaluation.edits import edit_run, source_images

    sources = source_images(manifest, cfg.editing.sources, cfg.editing.num_sources)
    edit_run(cfg, method, weights, manifest, clap, clap_index, sources, out, inversions, read_only_cache=True)


def invert(cfg: Config, manifest: str, out: str) -> None:
    """The frozen SD's inversions of a dataset's editing sources (``editing.sources`` or held-out frames)."""
    from sonic.evaluation.edits import invert_sources, source_images

    invert_sources(cfg, source_images(manifest, cfg.editing.sources, cfg.editing.num_sources), out)


def guidance(cfg: Config, dataset: str, methods: list[str], weights: list[str], manifest: str, clap: str,
             clap_index: str, refs: str, refs_index: str, images: str, out_csv: str, out_png: str,
             out_grid: str) -> None:
    """The guidance sweep of one dataset (``evaluation.guidance_sweep``; :mod:`sonic.evaluation.guidance`): every
    method (``methods[i]`` from ``weights[i]``) at every scale on training clips, in one process."""
    from sonic.evaluation.guidance import guidance_sweep

    _paired("evaluate guidance", method=methods, weights=weights)
    guidance_sweep(cfg, dataset, methods, weights, manifest, clap, clap_index, refs, refs_index, images, out_csv,
                   out_png, out_grid, load=load_generator)


def table(kind: str, scores: list[str], out_csv: str, out_md: str, paper: str | None, title: str = "",
          per_image: list[str] | None = None, samples: int = 2000, level: float = 0.95) -> None:
    from sonic.evaluation.tables import write_table

    write_table(scores, kind, out_csv, out_md, paper, title, per_image, samples, level)


def replicates(kind: str, scores: list[str], per_image: list[str], seeds: list[int], out_csv: str, out_summary: str,
               out_md: str, title: str = "", samples: int = 2000, level: float = 0.95) -> None:
    """A table across training seeds (docs/evaluation.md#replicates): ``scores[i]`` and ``per_image[i]`` of
    training seed ``seeds[i]``."""
    from sonic.evaluation.replicates import write_replicates

    _paired("evaluate replicates", scores=scores, per_image=per_image, training_seeds=seeds)
    write_replicates(scores, per_image, seeds, kind, out_csv, out_summary, out_md, title, samples, level)


def figures(cfg: Config, weights: str, manifest: str, generated: str, fig10: str, fig10_json: str, norms_csv: str,
            norms_png: str) -> None:
    """Paper Fig. 10 (one source edited along an interpolation between two audios of different classes and along
    a gain sweep, with what each control changed) and the supplement's Fig. 3 (gated cross-attention output norms
    per layer across steps). The two classes: ``editing.control_pair``, else those whose generations in
    ``generated`` (SonicDiffusion's Table 1 run) differ most in the ``clip_eval`` image space."""
    import json

    import numpy as np

    from sonic.audio import load_audio
    from sonic.data.tables import read_csv, read_manifest
    from sonic.evaluation.controls import figure10, gate_norms, most_different_pair, save_gate_norms
    from sonic.evaluation.edits import source_images
    from sonic.evaluation.runs import eval_jobs
    from sonic.images import load_images
    from sonic.metrics.clip_scores import image_features
    from sonic.models import registry
    from sonic.models.pipeline import SonicPipeline

    pipe = SonicPipeline.from_weights(weights, registry.load_stable_diffusion(cfg),
                                      audio_encoder=registry.load_audio_encoder(cfg))
    clip = registry.load_clip(cfg, "clip_eval")
    jobs = eval_jobs(manifest, 1).drop_duplicates("label")
    if cfg.editing.control_pair:
        pair, cosine = tuple(cfg.editing.control_pair), None
    else:
        run = read_csv(Path(generated) / "manifest.csv")
        features = image_features(clip, load_images(run["path"].astype(str).tolist(), cfg.generation.resolution))
        *pair, cosine = most_different_pair(features, run["label"].astype(str).tolist())
    clip_of = dict(zip(jobs["label"].astype(str), jobs["clip_id"].astype(str)))
    missing = [label for label in pair if label not in clip_of]
    if missing:
        raise ConfigError(f"editing.control_pair: no evaluation clip of {missing} in {manifest}")
    table = read_manifest(manifest)
    audio = dict(zip(table["clip_id"].astype(str), table["audio"].astype(str)))
    waves = [load_audio(audio[clip_of[label]], pipe.audio_encoder.sample_rate) for label in pair]
    ed = cfg.edit_settings()
    source = load_images([str(source_images(manifest, ed.sources, 1)[0])], cfg.generation.resolution)[0]
    measures = figure10(pipe, source, waves[0], waves[1], fig10, num_inference_steps=ed.steps,
                        guidance_scale=ed.guidance_scale, batch_size=cfg.generation.batch_size, clip=clip)
    result = {"pair": list(pair), "clips": [clip_of[label] for label in pair], "pair_cosine": cosine, **measures}
    Path(fig10_json).write_text(json.dumps(result, indent=2) + "\n")
    log.info("Fig. 10: %s -> %s; CLIP distance from alpha 0: %s; brightness over gain %s dB: %s", *pair,
             [round(d, 3) for d in measures["clip_distance"]], measures["gains_db"],
             [round(b, 3) for b in measures["brightness"]])
    embeds = pipe.embed_audio([np.asarray(w) for w in waves])
    rows = gate_norms(pipe, embeds, num_inference_steps=ed.steps, guidance_scale=cfg.generation.guidance_scale)
    save_gate_norms(rows, norms_csv, norms_png)


# ---- the ``sonic evaluate`` command -----------------------------------------------------------------------------
def run_evaluate(args) -> int:
    """One step of the evaluation protocol: references, generation run, scoring, editing, figures, tables, the
    guidance sweep and its choice."""
    import json

    from sonic import config

    if args.step == "table":
        table(args.kind, args.scores, args.out, args.markdown, args.paper, args.title or "", args.per_image,
              args.bootstrap_samples, args.interval_level)
        return 0
    if args.step == "replicates":
        replicates(args.kind, args.scores, args.per_image, args.training_seeds, args.out, args.summary, args.markdown,
                   args.title or "", args.bootstrap_samples, args.interval_level)
        return 0
    if args.step == "guidance-choice":
        from sonic.evaluation.guidance import write_choice

        write_choice(args.sweeps, args.max_clipped, args.out, args.markdown)
        return 0
    if args.step == "grid":
        from sonic.evaluation.figures import comparison_grid

        bad = [r for r in args.runs if "=" not in r]
        if bad:
            raise InputError(f"--runs: expected METHOD=FOLDER pairs, got {bad[0]!r}")
        comparison_grid(args.manifest, dict(r.split("=", 1) for r in args.runs), args.out, edits=args.edits)
        return 0
    cfg = config.from_args(args)
    if args.step == "references":
        references(cfg, args.manifest, args.out, args.index)
    elif args.step == "generate":
        generate(cfg, args.method, args.weights, args.manifest, args.clap, args.clap_index, args.out)
    elif args.step == "figures":
        figures(cfg, args.weights, args.manifest, args.generated, args.fig10, args.fig10_json, args.norms_csv,
                args.norms_png)
    elif args.step == "edit":
        edit(cfg, args.method, args.weights, args.manifest, args.clap, args.clap_index, args.out, args.inversions)
    elif args.step == "invert":
        invert(cfg, args.manifest, args.out)
    elif args.step == "guidance":
        guidance(cfg, args.dataset, args.method, args.weights, args.manifest, args.clap, args.clap_index,
                 args.references, args.references_index, args.images, args.out, args.figure, args.grid)
    else:
        results = score(cfg, args.method, args.dataset, args.manifest, args.references, args.references_index,
                        args.images, args.out, args.per_image, args.seeds)
        for result in results:
            print(json.dumps({k: v for k, v in result.items() if k != "missing_images"}, indent=2))
    return 0


def _dataset_args(parser) -> None:
    """A dataset's manifest and its CLAP cache."""
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--clap", required=True, help="the dataset's CLAP cache (safetensors)")
    parser.add_argument("--clap-index", required=True, help="the CLAP cache's index CSV")


def register(sub) -> None:
    from sonic import config

    p = sub.add_parser("evaluate", help="evaluation: references, generation runs, scores, editing runs, figures, "
                                        "tables, the guidance sweep (docs/evaluation.md)")
    steps = p.add_subparsers(dest="step", required=True, metavar="<step>")
    q = steps.add_parser("references", help="cache Wav2CLIP / CLIP / FID embeddings of a dataset's val clips and "
                                             "SAC's shape classifier of its train frames")
    q.add_argument("--manifest", required=True)
    q.add_argument("--out", required=True, help="safetensors (audio, frames, fid, shape_*)")
    q.add_argument("--index", required=True, help="CSV row -> clip_id, label")
    q = steps.add_parser("generate", help="generate the evaluation subset (eval clips x evaluation.seeds) of one "
                         "or more methods (one --weights and one --out per --method, in order)")
    q.add_argument("--method", required=True, nargs="+",
                   help="SonicDiffusion[-<variant>], AudioToken, GlueGen or SonicDiffusion_release")
    q.add_argument("--weights", required=True, nargs="+", help="each method's trained weights folder")
    _dataset_args(q)
    q.add_argument("--out", required=True, nargs="+", help="folders: <clip_id>_<seed>.png + manifest.csv")
    q = steps.add_parser("score", help="AIS, AIC, SAC, IIS, FID of folders of generated images, one per method "
                         "(one --images, --out and --per-image per --method, in order)")
    q.add_argument("--method", required=True, nargs="+")
    q.add_argument("--dataset", required=True)
    q.add_argument("--manifest", required=True)
    q.add_argument("--references", required=True)
    q.add_argument("--references-index", required=True)
    q.add_argument("--images", required=True, nargs="+", help="folders with <clip_id>_<seed>.png")
    q.add_argument("--out", required=True, nargs="+", help="JSON of the scores")
    q.add_argument("--per-image", nargs="+", help="CSV of per-image scores and predicted labels")
    q.add_argument("--seeds", type=int, help="images per clip (default evaluation.seeds; editing: sources)")
    q = steps.add_parser("edit", help="Table 2: edit the source images with every evaluation audio (PnP)")
    q.add_argument("--method", required=True, help="SonicDiffusion, PnP, AudioToken, GlueGen or SonicDiffusion_release")
    q.add_argument("--weights", help="the method's weights (PnP: none)")
    _dataset_args(q)
    q.add_argument("--inversions", required=True, help="the sources' inversions (`evaluate invert`), read only")
    q.add_argument("--out", required=True, help="folder: <clip_id>_<source>.png, manifest.csv, structure.json")
    q = steps.add_parser("invert", help="DDIM inversions of a dataset's editing sources with the frozen SD")
    q.add_argument("--manifest", required=True)
    q.add_argument("--out", required=True, help="folder of inversions (<key>.safetensors)")
    q = steps.add_parser("figures", help="sound controls (paper Fig. 10) and gate output norms (supp. Fig. 3)")
    q.add_argument("--weights", required=True, help="SonicDiffusion weights")
    q.add_argument("--manifest", required=True)
    q.add_argument("--generated", required=True,
                   help="SonicDiffusion's generation run of the dataset (picks the two most different classes)")
    q.add_argument("--fig10", required=True, help="PNG grid: interpolation and gain sweep")
    q.add_argument("--fig10-json", required=True, help="what each control changed (CLIP distance, brightness)")
    q.add_argument("--norms-csv", required=True)
    q.add_argument("--norms-png", required=True)
    q = steps.add_parser("guidance", help="guidance sweep of one dataset (evaluation.guidance_sweep): every method "
                         "at every scale on training clips; AIC, SAC, FID, clipped share (one --weights per --method)")
    q.add_argument("--dataset", required=True)
    q.add_argument("--method", required=True, nargs="+", help="SonicDiffusion, AudioToken, GlueGen")
    q.add_argument("--weights", required=True, nargs="+", help="each method's trained weights folder")
    _dataset_args(q)
    q.add_argument("--references", required=True, help="the dataset's references (SAC's shape classifier)")
    q.add_argument("--references-index", required=True)
    q.add_argument("--images", required=True, help="folder: <method>/g<scale>/<clip_id>_<seed>.png")
    q.add_argument("--out", required=True, help="CSV: one row per method x scale")
    q.add_argument("--figure", required=True, help="PNG: AIC, SAC, FID, clipped share against the scale")
    q.add_argument("--grid", required=True, help="PNG: images per method x scale beside the real frames")
    for q in steps.choices.values():
        config.add_arguments(q)
    q = steps.add_parser("guidance-choice", help="the guidance scale by the stated rule, from every dataset's sweep "
                                                 "(docs/evaluation.md#guidance)")
    q.add_argument("--sweeps", nargs="+", required=True, help="the CSVs of `evaluate guidance`")
    q.add_argument("--max-clipped", type=float, required=True, help="(evaluation.guidance_sweep.max_clipped)")
    q.add_argument("--out", required=True, help="JSON: the chosen scale and the means per scale")
    q.add_argument("--markdown", required=True, help="Markdown: one line per scale, the chosen one marked")
    q = steps.add_parser("table", help="a paper table (CSV + Markdown) from score JSONs")
    q.add_argument("kind", choices=["table1", "table2", "table3", "table4", "tableS1"])
    q.add_argument("--scores", nargs="+", required=True)
    q.add_argument("--per-image", nargs="+", help="each score's per-image CSV, in order: paired differences to the "
                                                  "reference row (SonicDiffusion; ablations: full)")
    q.add_argument("--bootstrap-samples", type=int, default=2000, help="(evaluation.bootstrap_samples)")
    q.add_argument("--interval-level", type=float, default=0.95, help="(evaluation.interval_level)")
    q.add_argument("--out", required=True, help="CSV")
    q.add_argument("--markdown", required=True, help="Markdown")
    q.add_argument("--paper", help="folder of the paper's tables: show its numbers beside ours")
    q.add_argument("--title")
    q = steps.add_parser("replicates", help="a table across training seeds (CSV per seed, summary CSV, Markdown) "
                                            "from score JSONs and per-image CSVs (docs/evaluation.md#replicates)")
    q.add_argument("kind", choices=["table1", "table3", "table4", "tableS1"])
    q.add_argument("--scores", nargs="+", required=True)
    q.add_argument("--per-image", nargs="+", required=True, help="each score's per-image CSV, in order")
    q.add_argument("--training-seeds", nargs="+", type=int, required=True,
                   help="each score's training seed, in order")
    q.add_argument("--bootstrap-samples", type=int, default=2000, help="(evaluation.bootstrap_samples)")
    q.add_argument("--interval-level", type=float, default=0.95, help="(evaluation.interval_level)")
    q.add_argument("--out", required=True, help="CSV: one row per dataset, method and training seed")
    q.add_argument("--summary", required=True, help="CSV: one row per dataset and method")
    q.add_argument("--markdown", required=True, help="Markdown")
    q.add_argument("--title")
    q = steps.add_parser("grid", help="report figure: generated images per method beside the ground-truth frames")
    q.add_argument("--manifest", required=True)
    q.add_argument("--runs", nargs="+", required=True, help="METHOD=FOLDER of generated images")
    q.add_argument("--edits", action="store_true",
                   help="the runs are editing runs: show the source image (of source 0) instead of the frame")
    q.add_argument("--out", required=True, help="PNG")
    p.set_defaults(func=run_evaluate)
