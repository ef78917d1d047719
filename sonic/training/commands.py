"""``sonic train <stage>``: stage 1 (projector alignment) or stage 2 (gated cross-attention tuning) of one variant
on one dataset. The trained competitors add their own stages (:mod:`sonic.competitors.commands`)."""

from __future__ import annotations

import argparse
import json

from sonic import config


def stages(sub) -> argparse._SubParsersAction:
    """The stage subparsers of ``sonic train`` (the ``train`` parser is made on first use)."""
    if "train" not in sub.choices:
        p = sub.add_parser("train", help="a training stage on one dataset: stage1, stage2, or a competitor "
                                         "(audiotoken, gluegen)")
        p.set_defaults(stage_parsers=p.add_subparsers(dest="stage", required=True, metavar="<stage>"))
    return sub.choices["train"].get_default("stage_parsers")


def add_stage(sub, name: str, help: str, func) -> argparse.ArgumentParser:
    """A ``sonic train`` stage with the arguments every stage takes: the settings, the dataset's manifest and
    CLAP cache, the run folder and the budget factor."""
    q = stages(sub).add_parser(name, help=help)
    config.add_arguments(q)
    q.add_argument("--manifest", required=True, help="the dataset's manifest (its train split is used)")
    q.add_argument("--clap", required=True, help="the dataset's CLAP cache (safetensors)")
    q.add_argument("--clap-index", required=True, help="the CLAP cache's index CSV")
    q.add_argument("--out", required=True, help="run folder: checkpoints, losses.csv, loss.png, final weights")
    q.add_argument("--budget", type=float, default=1.0,
                   help="factor on the configured steps (the dataset's training.budget; Snakemake passes it)")
    q.set_defaults(func=func)
    return q


def _summary(summary: dict) -> int:
    print(json.dumps(summary, indent=2))
    return 0


def run_stage1(args: argparse.Namespace) -> int:
    from sonic.training import run

    return _summary(run.stage1(config.from_args(args), variant=args.variant, manifest=args.manifest, clap=args.clap,
                               clap_index=args.clap_index, captions=args.captions, out=args.out, budget=args.budget))


def run_stage2(args: argparse.Namespace) -> int:
    from sonic.training import run

    return _summary(run.stage2(config.from_args(args), variant=args.variant, manifest=args.manifest, clap=args.clap,
                               clap_index=args.clap_index, projector=args.projector, out=args.out,
                               budget=args.budget))


def register(sub) -> None:
    q = add_stage(sub, "stage1", "projector alignment (paper §3.3)", run_stage1)
    q.add_argument("--variant", default="full", help="a name from training.variants (default: full)")
    q.add_argument("--captions", required=True, help="the BLIP-2 captions CSV")
    q = add_stage(sub, "stage2", "gated cross-attention tuning (paper §3.4)", run_stage2)
    q.add_argument("--variant", default="full", help="a name from training.variants (default: full)")
    q.add_argument("--projector", help="the stage-1 projector folder (omit for a variant without stage 1)")
