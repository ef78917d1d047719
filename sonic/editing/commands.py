"""``sonic edit``: audio-guided Plug-and-Play editing of one image (paper §3.5); text-only PnP without --audio."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from sonic import config
from sonic.errors import InputError
from sonic.models.commands import add_sampling_arguments, audio_conditions, beta_arg, load_pipeline


def run_edit(args: argparse.Namespace) -> int:
    import torch

    from sonic.editing import InversionCache, PnPConfig, edit
    from sonic.images import open_image, to_pil

    if not args.audio and not args.text:
        raise InputError("give --audio, --text or both")
    source = open_image(args.image)  # before any model is loaded
    cfg = config.from_args(args)
    options = {"f_t": args.f_t, "attn_t": args.attn_t, "resnets": tuple(args.resnets) if args.resnets else None,
               "source_branch": args.source_branch}  # given on the command line: over editing.*
    ed = dataclasses.replace(cfg.edit_settings(), **{k: v for k, v in options.items() if v is not None})
    torch.manual_seed(args.seed)  # DDIM (eta 0) inversion and sampling are deterministic; this fixes the rest
    pipe = load_pipeline(cfg, args, with_audio_encoder=bool(args.audio) and not args.embedding)
    pnp = PnPConfig.from_settings(ed)
    cache = InversionCache(args.cache, identity=str(cfg.models.sd)) if args.cache else None
    gen = cfg.generation
    images = edit(
        pipe,
        source,
        audio_conditions(args, pipe, args.audio, args.audio_b),
        prompt=args.text,
        num_inference_steps=args.steps or ed.steps,
        guidance_scale=ed.guidance_scale if args.guidance is None else args.guidance,
        beta=beta_arg(args.beta),
        cache=cache,
        config=pnp,
        height=args.resolution or gen.resolution,
        width=args.resolution or gen.resolution,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    to_pil(images)[0].save(out)
    print(out)
    return 0


def register(sub) -> None:
    p = sub.add_parser("edit", help="edit an image with an audio clip (Plug-and-Play; text-only without --audio)")
    config.add_arguments(p)
    add_sampling_arguments(p, audio_required=False)
    p.add_argument("--image", required=True, help="source image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--f-t", type=float, help="fraction of steps with residual-feature injection (default editing.f_t)")
    p.add_argument("--attn-t", type=float,
                   help="fraction of steps with self-attention q/k injection (default editing.attn_t)")
    p.add_argument("--resnets", type=int, nargs="+",
                   help="decoder residual blocks whose residual branch is injected (default editing.resnets: 4; "
                        "authors: 4 5; supp.: 4 5 6)")
    p.add_argument("--source-branch", choices=["base", "null_audio"],
                   help="source branch: the base UNet or the adapted UNet with the null audio (authors); "
                        "default editing.source_branch")
    p.add_argument("--cache", help="inversion cache folder (one inversion per image, reused for every audio)")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=run_edit)
