"""``sonic train <stage>``: stage 1 (projector alignment) or stage 2 (gated cross-attention tuning) of one variant
on one dataset. The trained competitors add their own stages (:mod:`sonic.competitors.commands`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys

from sonic import config

log = logging.getLogger(__name__)


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
    q.add_argument("--processes", type=int, default=1,
                   help="data-parallel processes, one per GPU (training.resources.gpu; Snakemake passes it): more "
                        "than 1 re-runs this command through `accelerate launch --multi_gpu`")
    q.set_defaults(func=distributed(func))
    return q


def launch_command(processes: int, argv: list[str]) -> list[str]:
    """``accelerate launch`` of ``sonic <argv>`` in ``processes`` processes on this machine (``--processes`` left
    out of the relaunched command). On a machine without CUDA the processes train on the CPU (gloo). The launcher's
    ``--mixed_precision no`` is only its default: each stage passes ``training.mixed_precision`` to its Accelerator."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--processes":
            skip = True
        elif not a.startswith("--processes="):
            rest.append(a)
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--dynamo_backend", "no", "--mixed_precision", "no", "-m", "sonic.cli", *rest]


def distributed(func):
    """``func`` run once here, or (``--processes`` > 1, not already inside a launched process) through
    :func:`launch_command`; in the stage (``sonic.training.loop``) each process draws its own batches, gradients are
    averaged, and only the main process writes."""

    def run(args: argparse.Namespace) -> int:
        if args.processes < 1:
            raise config.ConfigError(f"--processes must be >= 1, got {args.processes}")
        if args.processes == 1 or "LOCAL_RANK" in os.environ:
            return func(args)
        command = launch_command(args.processes, args.argv)
        log.info("launching %d processes: %s", args.processes, " ".join(command))
        return subprocess.run(command, check=False).returncode

    run.__name__, run.__module__ = func.__name__, func.__module__  # what the env checks read (tests/test_envs.py)
    return run


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
