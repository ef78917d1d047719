"""The ``sonic`` command: one entry point; each stage registers its subcommands next to the code they run (a
``register(subparsers)`` function in the stage's ``commands`` module) and imports its heavy modules only when one
of them runs (``sonic <command> --help``). The configuration arguments are :func:`sonic.config.add_arguments`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

log = logging.getLogger("sonic")

# The modules whose ``register`` adds subcommands, in the order of ``sonic --help``.
COMMAND_MODULES = (
    "sonic.models.commands",  # params, init-weights, generate
    "sonic.editing.commands",  # edit
    "sonic.demo.commands",  # synth, pretrain (demo profile)
    "sonic.data.commands",  # data, features
    "sonic.training.commands",  # train stage1, train stage2
    "sonic.competitors.commands",  # train audiotoken, train gluegen
    "sonic.evaluation.commands",  # evaluate
    "sonic.app.commands",  # app
)


def _set_threads(n: int | None) -> None:
    """Limit CPU threads to what Snakemake gave the job; torch reads these variables when it is imported."""
    if n:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)


def command_name(argv: list[str]) -> str:
    """The command as typed, without options: ``train stage1`` of ``sonic -v train stage1 --config c.yaml``."""
    words = [w for w in argv if w not in ("-v", "--verbose")]
    name = []
    for w in words:
        if w.startswith("-"):
            break
        name.append(w)
    return " ".join(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonic", description="SonicDiffusion: audio-driven image generation and "
                                     "editing with a frozen Stable Diffusion (sonic <command> --help)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a command re-launched in several processes (sonic train --processes) passes on
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    _set_threads(getattr(args, "threads", None))  # the table and grid steps run no model
    from sonic.errors import PATH_ERRORS, InputError, one_line

    try:
        return args.func(args)
    except (InputError, *PATH_ERRORS) as err:  # a user's mistake: one line, exit 2 (sonic.errors); -v: traceback
        if args.verbose:
            raise
        print(f"sonic {command_name(argv)}: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
