"""``sonic synth`` and ``sonic pretrain``: the demo profile's synthetic world and miniature pretrained models."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
from pathlib import Path

from sonic import config

log = logging.getLogger(__name__)

# What each miniature model reads beyond its manifests, seed, steps and recipe (``pretrain.<model>``): cfg -> keyword
# arguments of its ``main``.
PRETRAIN_INPUTS = {
    "clip": lambda cfg, args: {"threads": args.threads},
    "clap": lambda cfg, args: {},
    "fid": lambda cfg, args: {"threads": args.threads},
    "blip2": lambda cfg, args: {},
    "wav2clip": lambda cfg, args: {"threads": args.threads, "clip_dir": cfg.models.require("clip_ais")},
    "sd": lambda cfg, args: {"threads": args.threads, "clip_dir": cfg.models.require("clip_ais"),
                             "unet_config": cfg.models.require("unet_config"), "evaluate": cfg.pretrain.evaluate},
}


def run_synth(args: argparse.Namespace) -> int:
    from sonic.demo import synth

    cfg = config.from_args(args)
    size = args.size or cfg.data.synth.size
    if size is None:
        raise config.ConfigError(f"{cfg.source}: data.synth.size is null (real data); pass --size to synthesise")
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
    if args.bad_inputs or cfg.data.synth.bad_inputs:
        for path, kind in synth.synth_bad_inputs(roots[0], spec["format"], seed=cfg.seed, workers=workers):
            log.info("bad input (%s): %s", kind, path)
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    """Train one miniature model of the demo profile on the synthetic world's manifests."""
    cfg = config.from_args(args)
    module = importlib.import_module(f"sonic.demo.pretrain.{args.model}")
    steps = args.steps or cfg.pretrain.steps.get(args.model)
    quality = module.main(args.manifests, args.out, seed=cfg.seed, steps=steps,
                          settings=getattr(cfg.pretrain, args.model), **PRETRAIN_INPUTS[args.model](cfg, args))
    print(json.dumps(quality, indent=2))
    return 0


def run_rehearse_models(args: argparse.Namespace) -> int:
    """Paper-size models with random weights at the locations ``models`` names (docs/rehearsal.md)."""
    from sonic.demo import random_models

    cfg = config.from_args(args)
    written = random_models.write_all(cfg, only=args.only, cache=Path(args.cache) if args.cache else None,
                                      clip_vocab=args.clip_vocab)
    print(json.dumps(written, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset in its native on-disk format (demo profile)")
    config.add_arguments(p)
    p.add_argument("--dataset", required=True, help="dataset name from data.datasets")
    p.add_argument("--size", choices=["smoke", "demo", "rehearsal"], help="default: data.synth.size")
    p.add_argument("--bad-inputs", action="store_true", help="also write corrupt and edge-case files")
    p.add_argument("--out", required=True, help="root folder; the native layout is written inside")
    p.set_defaults(func=run_synth)

    p = sub.add_parser("pretrain", help="train a miniature pretrained model on the synthetic world (demo)")
    p.add_argument("model", choices=sorted(PRETRAIN_INPUTS))
    config.add_arguments(p)
    p.add_argument("--manifests", nargs="+", required=True)
    p.add_argument("--out", required=True, help="model folder (save_pretrained layout) or file (wav2clip)")
    p.add_argument("--steps", type=int, help="training steps (default: pretrain.steps.<model> or the model's own)")
    p.set_defaults(func=run_pretrain)

    p = sub.add_parser("rehearse", help="paper-size stand-ins for a rehearsal of the paper run (docs/rehearsal.md)")
    steps = p.add_subparsers(dest="step", required=True)
    q = steps.add_parser("models", help="write random-weight, paper-size models where `models` points, in the "
                                        "real on-disk formats")
    config.add_arguments(q)
    q.add_argument("--only", nargs="+", metavar="KEY", help="only these models.* keys (and `release`)")
    q.add_argument("--clip-vocab", help="a local bpe_simple_vocab_16e6.txt.gz (default: read from the "
                                        "open_clip_torch wheel, downloaded with pip without its dependencies)")
    q.add_argument("--cache", help="folder for that wheel (default: the system's temporary folder)")
    q.set_defaults(func=run_rehearse_models)
