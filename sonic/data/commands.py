"""``sonic data`` (check or index a dataset, extract a shard, build the manifest) and ``sonic features`` (the
per-dataset caches: CLAP embeddings, BLIP-2 captions of the training frames)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sonic import config
from sonic.errors import InputError


def run_data(args: argparse.Namespace) -> int:
    from sonic.data import run

    cfg = config.from_args(args)
    if args.step == "check":
        return run.run_check(cfg, args.dataset, Path(args.out) if args.out else None, args.threads or 1)
    if args.step == "index":
        run.run_index(cfg, args.dataset, Path(args.videos), Path(args.rejects))
    elif args.step == "extract":
        run.run_extract(cfg, args.dataset, Path(args.videos), args.shard, args.shards, Path(args.out))
    else:
        run.run_manifest(cfg, args.dataset, [Path(d) for d in args.shard_dirs], Path(args.index_rejects),
                         Path(args.out), Path(args.rejects))
    return 0


def run_features(args: argparse.Namespace) -> int:
    import torch

    from sonic.data import features
    from sonic.data.tables import read_manifest
    from sonic.models import registry

    cfg = config.from_args(args)
    read_manifest(args.manifest)  # a missing or foreign manifest fails before a model is loaded
    if args.kind == "clap":
        if not args.index:
            raise InputError("--index is required for clap features")
        encoder = registry.load_audio_encoder(cfg)
        features.compute_clap_cache(encoder, args.manifest, args.out, args.index, batch_size=args.batch_size,
                                    encoder_name=str(cfg.models.clap))
    else:
        model, processor = registry.load_blip2(cfg, dtype=getattr(torch, cfg.data.caption_dtype))
        features.compute_captions(model, processor, args.manifest, args.out, batch_size=args.batch_size)
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="data preparation: check or index a dataset, extract a shard, build the manifest")
    steps = p.add_subparsers(dest="step", required=True, metavar="<step>")
    q = steps.add_parser("check", help="what a dataset would give, without extracting: per label videos, duration "
                                       "and clips, unusable files with reasons, the split's sizes; exit 1 if unusable")
    q.add_argument("--out", help="also write the report to this file")
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
        config.add_arguments(q)
        q.add_argument("--dataset", required=True)
    p.set_defaults(func=run_data)

    p = sub.add_parser("features", help="per-dataset caches: CLAP embeddings, BLIP-2 captions of training frames")
    p.add_argument("kind", choices=["clap", "captions"])
    config.add_arguments(p)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out", required=True, help="clap: safetensors (N, d) in manifest order; captions: CSV")
    p.add_argument("--index", help="clap: CSV row -> clip_id")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=run_features)
