"""Probe a miniature-SD recipe on the demo's frames: does the VAE keep the shapes, does the UNet draw them?

Trains the VAE (and, with --unet, the UNet) of ``sonic.demo.pretrain.sd`` with the given ``pretrain.sd`` overrides
on the train frames of a built demo (``results/data/*/manifest.csv``, the CLIP of ``results/demo/models/clip``),
then prints one JSON line: training times, val PSNR, and SAC (the colour-blind class measure,
``sonic.metrics.shape``, fitted per dataset on the train frames) of the val frames, of their reconstructions and,
with --unet, of text-to-image samples (4 per class from its caption prompt) at each --guidance. Writes
``<out>/reconstructions.png`` and ``<out>/samples_g<scale>.png`` to look at. docs/pretrained-models.md.

    python benchmarks/sd_recipe.py --set vae_steps=300 vae_layers_per_block=1 --out /tmp/probe
    python benchmarks/sd_recipe.py --unet --set unet_steps=700 unet_batch_size=24 unet_lr=2e-3 --out /tmp/probe
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "results"), help="a built demo's results folder")
    p.add_argument("--datasets", nargs="+", default=["greatest_hits", "landscape", "ravdess"])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="pretrain.sd overrides (YAML values)")
    p.add_argument("--unet", action="store_true", help="also train the UNet and sample from it")
    p.add_argument("--arch", default=str(ROOT / "workflow/configs/unet_demo.json"), help="the UNet architecture JSON")
    p.add_argument("--guidance", nargs="+", type=float, default=[2.0, 5.0])
    p.add_argument("--per-class", type=int, default=4, help="samples per class")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps of the samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from sonic.demo.pretrain import sd
    from sonic.demo.pretrain.data import load_pairs

    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    settings = sd.settings_from(overrides, source="--set")
    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifests = [results / "data" / d / "manifest.csv" for d in args.datasets]
    train, val = load_pairs(manifests, ("train",)), load_pairs(manifests, ("val",))
    train_images = sd.load_frames(train, settings.image_size)
    val_images = sd.load_frames(val, settings.image_size)
    shapes = sd.shape_classifiers(train, train_images)
    truth, sets = [q.label for q in val], [q.dataset for q in val]
    report: dict = {"settings": overrides}

    if not args.unet:
        started = time.perf_counter()
        vae, stats = sd.train_vae(train_images, settings)
        report["vae_seconds"] = round(time.perf_counter() - started, 1)
    else:
        arch = json.loads(Path(args.arch).read_text())
        quality = sd.build_sd(train, val, results / "demo/models/clip", out / "sd", arch,
                              replace(settings, eval_seeds=0))
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(out / "sd", subfolder="vae").eval()
        report |= {"vae_seconds": quality["vae"]["wall_seconds"], "unet_seconds": quality["unet"]["wall_seconds"]}
    rec = sd.reconstruct(vae, val_images)
    report |= {"psnr_val": round(sd.psnr(rec, val_images), 2),
               "SAC_val_frames": sd.shape_accuracy(shapes, val_images, truth, sets),
               "SAC_val_reconstructions": sd.shape_accuracy(shapes, rec, truth, sets)}
    rows = []
    for d in args.datasets:
        idx = [i for i, s in enumerate(sets) if s == d][:8]
        rows += [torch.cat(list(val_images[idx]), dim=-1), torch.cat(list(rec[idx]), dim=-1)]
    sd.contact_sheet(rows, out / "reconstructions.png")

    if args.unet:
        from diffusers import DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = out / "sd"
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").eval()
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
        labels = {d: sorted({q.label for q in train if q.dataset == d and
                             sum(r.label == q.label for r in train) >= 5}) for d in args.datasets}
        prompts, wanted, datasets, seeds = [], [], [], []
        for d, names in labels.items():
            for label in names:
                for k in range(args.per_class):
                    prompts.append(sd.caption_prompt(label, train))
                    wanted.append(label)
                    datasets.append(d)
                    seeds.append(k)
        for g in args.guidance:
            images = sd.generate(unet, vae, text_encoder, tokenizer, scheduler, prompts, seeds, args.steps, g)
            report[f"SAC_samples_g{g:g}"] = sd.shape_accuracy(shapes, images, wanted, datasets)
            sd.contact_sheet([torch.cat(list(images[[i for i, s in enumerate(datasets) if s == d]]), dim=-1)
                              for d in args.datasets], out / f"samples_g{g:g}.png")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
