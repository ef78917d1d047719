"""The ``sonic`` command: one entry point, one subcommand per job (``sonic <command> --help``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("sonic")


def _set_threads(n: int | None) -> None:
    """Limit CPU threads to what Snakemake gave the job; torch reads these variables when it is imported."""
    if n:
        import os

        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)


def _beta_arg(values: list[str] | None) -> float | dict[str, float]:
    """``--beta 0.8`` or ``--beta up3=0.5 --beta mid=1.2`` (per layer)."""
    if not values:
        return 1.0
    if len(values) == 1 and "=" not in values[0]:
        return float(values[0])
    out = {}
    for v in values:
        if "=" not in v:
            raise SystemExit(f"--beta: expected one number or LAYER=VALUE pairs, got {v!r}")
        name, value = v.split("=", 1)
        out[name] = float(value)
    return out


# ---- commands ---------------------------------------------------------------------------------------------
def cmd_params(args: argparse.Namespace) -> int:
    from sonic import config as config_mod
    from sonic.params import parameter_counts

    counts = parameter_counts(config_mod.load(args.config))
    text = json.dumps(counts, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def cmd_init_weights(args: argparse.Namespace) -> int:
    """Untrained SonicDiffusion weights (gates at 0, adapters copied from the UNet) for a config."""
    import torch

    from sonic import config as config_mod
    from sonic.models.adapters import install_adapters
    from sonic.models.io import save_weights
    from sonic.models.projector import AudioProjector
    from sonic.params import projector_config
    from sonic.registry import load_stable_diffusion

    cfg = config_mod.load(args.config)
    torch.manual_seed(cfg.seed)
    sd = load_stable_diffusion(cfg)
    adapters = install_adapters(sd.unet, cfg.adapters.placement)
    projector = AudioProjector(projector_config(cfg, sd.unet.config.cross_attention_dim))
    save_weights(args.out, projector, adapters, profile=cfg.profile, trained=False)
    log.info("wrote untrained weights (%d layers) to %s", len(adapters.names), args.out)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from sonic import config as config_mod
    from sonic.audio import load_audio
    from sonic.images import to_pil
    from sonic.models.io import load_weights
    from sonic.models.pipeline import SonicPipeline, interpolate_embeddings
    from sonic.registry import load_audio_encoder, load_stable_diffusion

    cfg = config_mod.load(args.config)
    device = torch.device(args.device)
    sd = load_stable_diffusion(cfg, device=device)
    projector, adapters = load_weights(args.weights, sd.unet)
    encoder = None if args.embedding else load_audio_encoder(cfg, device=device)
    pipe = SonicPipeline(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, projector, adapters, encoder)

    def embed(source: str) -> torch.Tensor:
        if args.embedding:
            return torch.from_numpy(np.load(source)).float().reshape(1, -1)
        return pipe.embed_audio([load_audio(source, encoder.sample_rate)], gain_db=args.gain_db)

    embeds = embed(args.audio)
    if args.audio_b:
        embeds = interpolate_embeddings(embeds, embed(args.audio_b), args.alpha)
    gen = cfg.generation
    images = pipe(
        embeds,
        prompt=args.text,
        seeds=args.seeds,
        num_inference_steps=args.steps or gen.steps,
        guidance_scale=gen.guidance_scale if args.guidance is None else args.guidance,
        beta=_beta_arg(args.beta),
        height=args.resolution or gen.resolution,
        width=args.resolution or gen.resolution,
        batch_size=gen.batch_size,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed, image in zip(args.seeds, to_pil(images), strict=True):
        path = out / f"{Path(args.audio).stem}_{seed}.png"
        image.save(path)
        print(path)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Audio-guided Plug-and-Play editing of one image (paper §3.5); text-only PnP without --audio."""
    import numpy as np
    import torch
    from PIL import Image

    from sonic import config as config_mod
    from sonic.audio import load_audio
    from sonic.editing import InversionCache, PnPConfig, edit
    from sonic.images import to_pil
    from sonic.models.io import load_weights
    from sonic.models.pipeline import SonicPipeline, interpolate_embeddings
    from sonic.registry import load_audio_encoder, load_stable_diffusion

    if not args.audio and not args.text:
        raise SystemExit("sonic edit: give --audio, --text or both")
    cfg = config_mod.load(args.config)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)  # DDIM (eta 0) inversion and sampling are deterministic; this fixes the rest
    sd = load_stable_diffusion(cfg, device=device)
    projector, adapters = load_weights(args.weights, sd.unet)
    encoder = None if (args.embedding or not args.audio) else load_audio_encoder(cfg, device=device)
    pipe = SonicPipeline(sd.unet, sd.vae, sd.text_encoder, sd.tokenizer, sd.scheduler, projector, adapters, encoder)

    def embed(source: str) -> torch.Tensor:
        if args.embedding:
            return torch.from_numpy(np.load(source)).float().reshape(1, -1)
        return pipe.embed_audio([load_audio(source, encoder.sample_rate)], gain_db=args.gain_db)

    embeds = embed(args.audio) if args.audio else None
    if args.audio and args.audio2:
        embeds = interpolate_embeddings(embeds, embed(args.audio2), args.alpha)
    gen = cfg.generation
    defaults = PnPConfig()
    config = PnPConfig(f_t=args.f_t, attn_t=args.attn_t,
                       resnets=tuple(args.resnets) if args.resnets else defaults.resnets,
                       source_branch=args.source_branch)
    cache = InversionCache(args.cache, identity=str(cfg.models.sd)) if args.cache else None
    images = edit(
        pipe,
        Image.open(args.image),
        embeds,
        prompt=args.text,
        num_inference_steps=args.steps or gen.steps,
        guidance_scale=gen.guidance_scale if args.guidance is None else args.guidance,
        beta=_beta_arg(args.beta),
        cache=cache,
        config=config,
        height=args.resolution or gen.resolution,
        width=args.resolution or gen.resolution,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    to_pil(images)[0].save(out)
    print(out)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from sonic import config as config_mod
    from sonic.data import synth

    cfg = config_mod.load(args.config)
    size = args.size or cfg.data.synth_size
    if size is None:
        raise config_mod.ConfigError(f"{cfg.source}: data.synth.size is null (real data); pass --size to synthesise")
    spec = cfg.data.dataset(args.dataset)
    out = Path(args.out)
    writers = {
        "greatest_hits": [synth.synth_greatest_hits],
        "landscape": [synth.synth_landscape] + ([synth.synth_into_the_wild] if spec.get("into_the_wild") else []),
        "ravdess": [synth.synth_ravdess],
    }[spec["format"]]
    workers = args.threads or 1
    roots = [write(out, size=size, seed=cfg.seed, workers=workers) for write in writers]
    log.info("wrote %s (%s size)", ", ".join(map(str, roots)), size)
    if args.bad_inputs or cfg.data.synth_bad_inputs:
        for path, kind in synth.synth_bad_inputs(roots[0], spec["format"], seed=cfg.seed, workers=workers):
            log.info("bad input (%s): %s", kind, path)
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from sonic import config as config_mod
    from sonic.data import run

    cfg = config_mod.load(args.config)
    if args.step == "index":
        run.run_index(cfg, args.dataset, Path(args.videos), Path(args.rejects))
    elif args.step == "extract":
        run.run_extract(cfg, args.dataset, Path(args.videos), args.shard, args.shards, Path(args.out))
    else:
        run.run_manifest(cfg, args.dataset, [Path(d) for d in args.shard_dirs], Path(args.index_rejects),
                         Path(args.out), Path(args.rejects))
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from sonic import config as config_mod
    from sonic import features, registry

    cfg = config_mod.load(args.config)
    if args.kind == "clap":
        if not args.index:
            raise SystemExit("sonic features clap: --index is required")
        encoder = registry.load_audio_encoder(cfg)
        features.compute_clap_cache(encoder, args.manifest, args.out, args.index, batch_size=args.batch_size,
                                    encoder_name=str(cfg.models.clap))
    else:
        model, processor = registry.load_blip2(cfg)
        features.compute_captions(model, processor, args.manifest, args.out, batch_size=args.batch_size)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Train one miniature model of the demo profile on the synthetic world's manifests."""
    import importlib
    import inspect
    import json as json_mod

    from sonic import config as config_mod

    cfg = config_mod.load(args.config)
    steps = args.steps or (cfg.raw.get("pretrain") or {}).get("steps", {}).get(args.model)
    module = importlib.import_module(f"sonic.pretrain.{args.model}")
    kwargs = {"seed": cfg.seed, "steps": steps}
    accepted = inspect.signature(module.main).parameters
    if "threads" in accepted:
        kwargs["threads"] = args.threads
    if "evaluate" in accepted:
        kwargs["evaluate"] = (cfg.raw.get("pretrain") or {}).get("evaluate", True)
    if "clip_dir" in accepted:  # models distilled into / conditioned on the miniature CLIP
        kwargs["clip_dir"] = cfg.models.require("clip_ais")
    if "unet_config" in accepted:  # the SD-1.x-shaped UNet's architecture
        kwargs["unet_config"] = cfg.models.require("unet_config")
    quality = module.main(args.manifests, args.out, **kwargs)
    print(json_mod.dumps(quality, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """One training stage of one variant on one dataset."""
    import json as json_mod

    from sonic import config as config_mod
    from sonic.training import run

    cfg = config_mod.load(args.config)
    common = dict(variant=args.variant, manifest=args.manifest, clap=args.clap, clap_index=args.clap_index,
                  out=args.out)
    if args.stage in ("audiotoken", "gluegen"):  # the trained competitors of Table 1 (README, "Competitors")
        from sonic import competitors

        summary = competitors.train(cfg, args.stage, args.manifest, args.clap, args.clap_index, args.captions,
                                    args.out, budget=args.budget)
    elif args.stage == "stage1":
        if not args.captions:
            raise config_mod.ConfigError("sonic train stage1 needs --captions (the BLIP-2 captions CSV)")
        summary = run.stage1(cfg, captions=args.captions, budget=args.budget, **common)
    else:
        summary = run.stage2(cfg, projector=args.projector, budget=args.budget, **common)
    print(json_mod.dumps(summary, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """One step of the evaluation protocol (README, Evaluation): references, generation run, scoring, tables."""
    from sonic import config as config_mod
    from sonic.evaluation import commands

    if args.step == "table":
        commands.table(args.kind, args.scores, args.out, args.markdown, args.paper, args.title or "")
        return 0
    if args.step == "grid":
        from sonic.evaluation.figures import comparison_grid

        runs = dict(r.split("=", 1) for r in args.runs)
        comparison_grid(args.manifest, runs, args.out, edits=args.edits)
        return 0
    cfg = config_mod.load(args.config)
    if args.step == "references":
        commands.references(cfg, args.manifest, args.out, args.index)
    elif args.step == "generate":
        commands.generate(cfg, args.method, args.weights, args.manifest, args.clap, args.clap_index, args.out)
    elif args.step == "figures":
        commands.figures(cfg, args.weights, args.manifest, args.fig10, args.norms_csv, args.norms_png)
    elif args.step == "edit":
        commands.edit(cfg, args.method, args.weights, args.manifest, args.clap, args.clap_index, args.out, args.cache)
    else:
        results = commands.score(cfg, args.method, args.dataset, args.manifest, args.references,
                                 args.references_index, args.images, args.out, args.per_image, args.seeds)
        for result in results:
            print(json.dumps({k: v for k, v in result.items() if k != "missing_images"}, indent=2))
    return 0


# ---- parser -----------------------------------------------------------------------------------------------
def _dataset_args(parser: argparse.ArgumentParser) -> None:
    """A dataset's manifest and its CLAP cache."""
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--clap", required=True, help="the dataset's CLAP cache (safetensors)")
    parser.add_argument("--clap-index", required=True, help="the CLAP cache's index CSV")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonic", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")

    p = sub.add_parser("params", help="parameter counts of projector, adapters and UNet (no weights needed)")
    p.add_argument("--config", required=True, help="workflow config YAML (e.g. workflow/configs/paper.yaml)")
    p.add_argument("--out", help="also write the JSON here")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("init-weights", help="write untrained projector + adapter weights for a config")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="output folder (config.json + model.safetensors)")
    p.set_defaults(func=cmd_init_weights)

    p = sub.add_parser("generate", help="generate images from an audio clip (optionally with text)")
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, help="SonicDiffusion weights folder")
    p.add_argument("--audio", required=True, help="audio file (or .npy CLAP embedding with --embedding)")
    p.add_argument("--audio-b", help="second audio for interpolation (paper Fig. 10a)")
    p.add_argument("--alpha", type=float, default=0.5, help="interpolation weight of --audio-b")
    p.add_argument("--embedding", action="store_true", help="--audio/--audio-b are .npy CLAP embeddings")
    p.add_argument("--text", help="optional text prompt")
    p.add_argument("--gain-db", type=float, default=0.0, help="waveform gain before encoding (Fig. 10b)")
    p.add_argument("--beta", nargs="+", help="adapter strength: one value, or LAYER=VALUE pairs (e.g. up3=0.5)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, help="DDIM steps (default: generation.steps)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: generation.guidance_scale)")
    p.add_argument("--resolution", type=int, help="image size in pixels (default: generation.resolution)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output folder for PNGs")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("edit", help="edit an image with an audio clip (Plug-and-Play; text-only without --audio)")
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, help="SonicDiffusion weights folder")
    p.add_argument("--image", required=True, help="source image")
    p.add_argument("--audio", help="audio file (or .npy CLAP embedding with --embedding); omit for text-only PnP")
    p.add_argument("--audio2", help="second audio to interpolate with (paper Fig. 10a)")
    p.add_argument("--alpha", type=float, default=0.5, help="interpolation weight of --audio2")
    p.add_argument("--embedding", action="store_true", help="--audio/--audio2 are .npy CLAP embeddings")
    p.add_argument("--text", help="optional text prompt (the class label for the text-only PnP baseline)")
    p.add_argument("--gain-db", type=float, default=0.0, help="waveform gain before encoding (Fig. 10b)")
    p.add_argument("--beta", nargs="+", help="adapter strength: one value, or LAYER=VALUE pairs (e.g. up3=0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="DDIM steps of inversion and editing (default: generation.steps)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: generation.guidance_scale)")
    p.add_argument("--f-t", type=float, default=0.8, help="fraction of steps with residual-feature injection")
    p.add_argument("--attn-t", type=float, default=0.5, help="fraction of steps with self-attention q/k injection")
    p.add_argument("--resnets", type=int, nargs="+",
                   help="decoder residual blocks whose residual branch is injected (default 4; authors: 4 5; "
                        "supp.: 4 5 6)")
    p.add_argument("--source-branch", choices=["base", "null_audio"], default="base",
                   help="source branch: the base UNet (default) or the adapted UNet with the null audio (authors)")
    p.add_argument("--resolution", type=int, help="image size in pixels (default: generation.resolution)")
    p.add_argument("--cache", help="inversion cache folder (one inversion per image, reused for every audio)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("synth", help="write a synthetic dataset in its native on-disk format (demo profile)")
    p.add_argument("--config", required=True)
    p.add_argument("--dataset", required=True, help="dataset name from data.datasets")
    p.add_argument("--size", choices=["smoke", "demo"], help="default: data.synth.size")
    p.add_argument("--bad-inputs", action="store_true", help="also write corrupt and edge-case files")
    p.add_argument("--out", required=True, help="root folder; the native layout is written inside")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("data", help="data preparation: index a dataset, extract a shard, build the manifest")
    steps = p.add_subparsers(dest="step", required=True, metavar="<step>")
    q = steps.add_parser("index", help="native layout -> table of source videos + rejects")
    q.add_argument("--videos", required=True, help="output CSV of usable videos")
    q.add_argument("--rejects", required=True, help="output CSV of skipped files with reasons")
    q = steps.add_parser("extract", help="frames + audio clips for one shard of the videos")
    q.add_argument("--videos", required=True)
    q.add_argument("--shard", type=int, required=True)
    q.add_argument("--shards", type=int, required=True)
    q.add_argument("--out", required=True, help="shard folder (clips.csv, rejects.csv, frames/, audio/)")
    q = steps.add_parser("manifest", help="merge shards; stratified 90/10 split and evaluation subset")
    q.add_argument("--shard-dirs", nargs="+", required=True)
    q.add_argument("--index-rejects", required=True)
    q.add_argument("--out", required=True, help="manifest CSV")
    q.add_argument("--rejects", required=True, help="rejects CSV (index + extraction)")
    for q in steps.choices.values():
        q.add_argument("--config", required=True)
        q.add_argument("--dataset", required=True)
        q.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("pretrain", help="train a miniature pretrained model on the synthetic world (demo)")
    p.add_argument("model", choices=["clip", "clap", "wav2clip", "blip2", "sd"])
    p.add_argument("--config", required=True)
    p.add_argument("--manifests", nargs="+", required=True)
    p.add_argument("--out", required=True, help="model folder (save_pretrained layout) or file (wav2clip)")
    p.add_argument("--steps", type=int, help="training steps (default: pretrain.steps.<model> or the model's own)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("train", help="stage 1 (projector alignment), stage 2 (gated cross-attention tuning), or a "
                                      "competitor (AudioToken, GlueGen)")
    p.add_argument("stage", choices=["stage1", "stage2", "audiotoken", "gluegen"])
    p.add_argument("--config", required=True)
    p.add_argument("--variant", default="full", help="a name from training.variants (default: full)")
    p.add_argument("--manifest", required=True, help="the dataset's manifest (its train split is used)")
    p.add_argument("--clap", required=True, help="the dataset's CLAP cache (safetensors)")
    p.add_argument("--clap-index", required=True, help="the CLAP cache's index CSV")
    p.add_argument("--captions", help="stage1: BLIP-2 captions CSV")
    p.add_argument("--projector", help="stage2: the stage-1 projector folder (omit for a variant without stage 1)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, losses.csv, loss.png, final weights")
    p.add_argument("--budget", type=float, default=1.0,
                   help="factor on the configured steps (the dataset's training.budget; Snakemake passes it)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("features", help="per-dataset caches: CLAP embeddings, BLIP-2 captions of training frames")
    p.add_argument("kind", choices=["clap", "captions"])
    p.add_argument("--config", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help="clap: safetensors (N, d) in manifest order; captions: CSV")
    p.add_argument("--index", help="clap: CSV row -> clip_id")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("evaluate", help="evaluation: references, generation runs, scores, tables (README, Evaluation)")
    steps = p.add_subparsers(dest="step", required=True, metavar="<step>")
    q = steps.add_parser("references", help="cache Wav2CLIP / CLIP / FID embeddings of a dataset's val clips")
    q.add_argument("--manifest", required=True)
    q.add_argument("--out", required=True, help="safetensors (audio, frames, fid)")
    q.add_argument("--index", required=True, help="CSV row -> clip_id, label")
    q = steps.add_parser("generate", help="generate the evaluation subset (eval clips x evaluation.seeds) of one "
                         "or more methods (one --weights and one --out per --method, in order)")
    q.add_argument("--method", required=True, nargs="+", help="SonicDiffusion[-<variant>], AudioToken or GlueGen")
    q.add_argument("--weights", required=True, nargs="+", help="each method's trained weights folder")
    _dataset_args(q)
    q.add_argument("--out", required=True, nargs="+", help="folders: <clip_id>_<seed>.png + manifest.csv")
    q = steps.add_parser("score", help="AIS, AIC, IIS, FID of folders of generated images, one per method "
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
    q.add_argument("--method", required=True, help="SonicDiffusion, PnP, AudioToken or GlueGen")
    q.add_argument("--weights", required=True, help="the method's weights (PnP: any SonicDiffusion weights)")
    _dataset_args(q)
    q.add_argument("--cache", required=True, help="inversion cache folder, shared by all methods")
    q.add_argument("--out", required=True, help="folder: <clip_id>_<source>.png, manifest.csv, structure.json")
    q = steps.add_parser("figures", help="sound controls (paper Fig. 10) and gate output norms (supp. Fig. 3)")
    q.add_argument("--weights", required=True, help="SonicDiffusion weights")
    q.add_argument("--manifest", required=True)
    q.add_argument("--fig10", required=True, help="PNG grid: interpolation and gain sweep")
    q.add_argument("--norms-csv", required=True)
    q.add_argument("--norms-png", required=True)
    for q in steps.choices.values():
        q.add_argument("--config", required=True)
        q.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes {threads})")
    q = steps.add_parser("table", help="a paper table (CSV + Markdown) from score JSONs")
    q.add_argument("kind", choices=["table1", "table2", "table3", "table4", "tableS1"])
    q.add_argument("--scores", nargs="+", required=True)
    q.add_argument("--out", required=True, help="CSV")
    q.add_argument("--markdown", required=True, help="Markdown")
    q.add_argument("--paper", help="folder of the paper's tables: show its numbers beside ours")
    q.add_argument("--title")
    q = steps.add_parser("grid", help="report figure: generated images per method beside the ground-truth frames")
    q.add_argument("--manifest", required=True)
    q.add_argument("--runs", nargs="+", required=True, help="METHOD=FOLDER of generated images")
    q.add_argument("--edits", action="store_true",
                   help="the runs are editing runs: show the source image (of source 0) instead of the frame")
    q.add_argument("--out", required=True, help="PNG")
    p.set_defaults(func=cmd_evaluate)

    for name, p in sub.choices.items():
        if name in ("data", "evaluate"):  # their steps take --threads themselves
            continue
        p.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes {threads})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    _set_threads(getattr(args, "threads", None))  # the table and grid steps run no model
    from sonic.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"sonic {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
