"""``sonic app``: the interactive app (Gradio, the optional extra ``[app]``) over a config and a weights folder."""

from __future__ import annotations

import argparse
import logging

from sonic import config

log = logging.getLogger(__name__)


def run_app(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise SystemExit("sonic app: Gradio is not installed; install the app extra: pip install -e '.[app]'") from None
    from sonic.app.studio import AppError, Studio
    from sonic.app.ui import build, launch

    studio = Studio(config.from_args(args), device=args.device, out_dir=args.out)
    if args.weights:
        try:
            studio.load(args.weights)
        except AppError as err:  # the page opens anyway and says so; another folder can be loaded there
            log.error("%s", err)
    page = build(studio)
    log.info("app: images are written to %s", studio.out_dir)
    launch(page, str(studio.out_dir), host=args.host, port=args.port)
    return 0


def register(sub) -> None:
    p = sub.add_parser("app", help="interactive app: generate from audio, edit an image with audio (Gradio; "
                                   "pip install -e '.[app]')")
    config.add_arguments(p)
    p.add_argument("--weights", help="SonicDiffusion weights folder (another can be loaded in the page)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="folder for the images made (default: a new temporary folder)")
    p.set_defaults(func=run_app)
