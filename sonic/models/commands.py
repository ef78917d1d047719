"""``sonic params``, ``sonic init-weights``, ``sonic generate`` and ``sonic import-release``: the model core's
commands."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sonic import config
from sonic.errors import InputError

log = logging.getLogger(__name__)


def beta_arg(values: list[str] | None) -> float | dict[str, float]:
    """``--beta 0.8`` or ``--beta up3=0.5 --beta mid=1.2`` (per layer)."""
    if not values:
        return 1.0
    if len(values) == 1 and "=" not in values[0]:
        try:
            return float(values[0])
        except ValueError:
            raise InputError(f"--beta: expected one number or LAYER=VALUE pairs, got {values[0]!r}") from None
    out = {}
    for v in values:
        if "=" not in v:
            raise InputError(f"--beta: expected one number or LAYER=VALUE pairs, got {v!r}")
        name, value = v.split("=", 1)
        try:
            out[name] = float(value)
        except ValueError:
            raise InputError(f"--beta: {v!r}: {value!r} is not a number") from None
    return out


def add_sampling_arguments(p: argparse.ArgumentParser, audio_required: bool) -> None:
    """The audio and sampling options ``generate`` and ``edit`` share."""
    p.add_argument("--weights", required=True, help="SonicDiffusion weights folder")
    p.add_argument("--audio", required=audio_required,
                   help="audio file (or .npy CLAP embedding with --embedding)" + ("" if audio_required else
                                                                                   "; omit for text-only PnP"))
    p.add_argument("--audio-b", "--audio2", dest="audio_b", help="second audio to interpolate with (paper Fig. 10a)")
    p.add_argument("--text", help="optional text prompt (edit: the class label for the text-only PnP baseline)")
    p.add_argument("--alpha", type=float, default=0.5, help="interpolation weight of the second audio")
    p.add_argument("--embedding", action="store_true", help="the audio arguments are .npy CLAP embeddings")
    p.add_argument("--gain-db", type=float, default=0.0, help="waveform gain before encoding (Fig. 10b)")
    p.add_argument("--beta", nargs="+", help="adapter strength: one value, or LAYER=VALUE pairs (e.g. up3=0.5)")
    p.add_argument("--steps", type=int, help="DDIM steps (default: generation.steps)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: generation.guidance_scale)")
    p.add_argument("--resolution", type=int, help="image size in pixels (default: generation.resolution)")
    p.add_argument("--device", default="cpu")


def audio_conditions(args: argparse.Namespace, pipe, first: str | None, second: str | None):
    """The CLAP embedding of ``first`` (interpolated towards ``second`` by ``--alpha``), or None without audio."""
    import numpy as np
    import torch

    from sonic.audio import load_audio
    from sonic.models.pipeline import interpolate_embeddings

    def embed(source: str) -> torch.Tensor:
        if args.embedding:
            try:
                return torch.from_numpy(np.load(source)).float().reshape(1, -1)
            except FileNotFoundError:
                raise
            except (OSError, ValueError) as err:  # not a .npy file, or an object array
                raise InputError(f"{source}: not a .npy CLAP embedding ({err})") from err
        return pipe.embed_audio([load_audio(source, pipe.audio_encoder.sample_rate)], gain_db=args.gain_db)

    if first is None:
        return None
    embeds = embed(first)
    return interpolate_embeddings(embeds, embed(second), args.alpha) if second else embeds


def load_pipeline(cfg, args: argparse.Namespace, with_audio_encoder: bool):
    """The SonicDiffusion pipeline of ``--weights`` on ``models.sd`` (and, when audio is encoded, the encoder the
    weights were made with: ``models.clap``, or ``models.msclap_2022`` for the imported release)."""
    import torch

    from sonic.models.pipeline import SonicPipeline
    from sonic.models.registry import encoder_config_for, load_audio_encoder, load_stable_diffusion

    device = torch.device(args.device)
    encoder = load_audio_encoder(encoder_config_for(cfg, args.weights), device=device) if with_audio_encoder else None
    return SonicPipeline.from_weights(args.weights, load_stable_diffusion(cfg, device=device), audio_encoder=encoder)


def run_params(args: argparse.Namespace) -> int:
    from sonic.models.params import parameter_counts

    text = json.dumps(parameter_counts(config.from_args(args)), indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def run_init_weights(args: argparse.Namespace) -> int:
    """Untrained SonicDiffusion weights (gates at 0, adapters copied from the UNet) for a config."""
    import torch

    from sonic.models.adapters import install_adapters
    from sonic.models.io import save_weights
    from sonic.models.params import projector_config
    from sonic.models.projector import build_projector
    from sonic.models.registry import load_stable_diffusion

    cfg = config.from_args(args)
    torch.manual_seed(cfg.seed)
    sd = load_stable_diffusion(cfg)
    adapters = install_adapters(sd.unet, cfg.adapters.placement)
    projector = build_projector(projector_config(cfg, sd.unet.config.cross_attention_dim))
    save_weights(args.out, projector, adapters, profile=cfg.profile, trained=False)
    log.info("wrote untrained weights (%d layers) to %s", len(adapters.names), args.out)
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from sonic.images import to_pil

    cfg = config.from_args(args)
    pipe = load_pipeline(cfg, args, with_audio_encoder=not args.embedding)
    gen = cfg.generation
    images = pipe(
        audio_conditions(args, pipe, args.audio, args.audio_b),
        prompt=args.text,
        seeds=args.seeds,
        num_inference_steps=args.steps or gen.steps,
        guidance_scale=gen.guidance_scale if args.guidance is None else args.guidance,
        beta=beta_arg(args.beta),
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


def run_import_release(args: argparse.Namespace) -> int:
    from sonic.models.release import import_release

    print(import_release(args.projector, args.adapters, args.out, heads=args.heads))
    return 0


def register(sub) -> None:
    p = sub.add_parser("params", help="parameter counts of projector, adapters and UNet (no weights needed)")
    config.add_arguments(p)
    p.add_argument("--out", help="also write the JSON here")
    p.set_defaults(func=run_params)

    p = sub.add_parser("init-weights", help="write untrained projector + adapter weights for a config")
    config.add_arguments(p)
    p.add_argument("--out", required=True, help="output folder (config.json + model.safetensors)")
    p.set_defaults(func=run_init_weights)

    p = sub.add_parser("generate", help="generate images from an audio clip (optionally with text)")
    config.add_arguments(p)
    add_sampling_arguments(p, audio_required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", required=True, help="output folder for PNGs")
    p.set_defaults(func=run_generate)

    p = sub.add_parser("import-release", help="the authors' released projector + adapters as a weights folder of "
                       "this project (docs/paper-profile.md#released-weights)")
    p.add_argument("--projector", required=True, help="audio_projector_<dataset>.pth")
    p.add_argument("--adapters", required=True, help="<dataset>.pt (the UNet's adapter parameters)")
    p.add_argument("--out", required=True, help="output folder (config.json + model.safetensors)")
    p.add_argument("--heads", type=int, default=8, help="attention heads of the released projector (theirs: 8)")
    p.set_defaults(func=run_import_release)
