"""The ``sonic`` command: one entry point, one subcommand per job (``sonic <command> --help``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("sonic")


def _set_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


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
    from sonic.models.io import load_weights
    from sonic.models.pipeline import SonicPipeline, interpolate_embeddings, to_pil
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


# ---- parser -----------------------------------------------------------------------------------------------
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

    for p in sub.choices.values():
        p.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes {threads})")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    _set_threads(args.threads)
    from sonic.config import ConfigError

    try:
        return args.func(args)
    except ConfigError as err:
        print(f"sonic {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
