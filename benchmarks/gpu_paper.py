"""Paper-size cost of SonicDiffusion beside plain diffusers / transformers, for a machine with a GPU.

Random weights at the paper's sizes (no download): the SD-1.4 UNet (``workflow/configs/unet_sd14.json``), SD's
VAE, a CLIP ViT-L/14-size text encoder, the paper profile's projector and the default adapters (gates open), and
BLIP-2 OPT-2.7b sizes for captioning. Three measurements, each beside its plain equivalent in the same process:

* generation: a 50-step 512 px SonicPipeline call with audio + text guidance vs a diffusers
  ``StableDiffusionPipeline`` call with the same prompt, steps and guidance on the same components;
* training: one stage-2 step (adapters + projector trained, UNet frozen, batch 6, bf16 autocast) vs one step of a
  plain UNet fine-tune (every UNet parameter trained) on the same batch;
* captioning: one batch through ``sonic.data.features.caption_frames`` vs ``model.generate`` on the processor's
  output.

Prints one JSON line per measurement (median seconds, peak GPU memory in GiB where CUDA is used, the ratio ours /
plain; the target for generation is <= 1.1) and a summary. ``--size tiny`` runs the same code on miniature
models (the test suite runs it on CPU).

    python benchmarks/gpu_paper.py [--size paper] [--device cuda] [--repeats 3] [--only generation training]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sonic.models.adapters import install_adapters  # noqa: E402
from sonic.models.projector import AudioProjector, ProjectorConfig  # noqa: E402
from sonic.models.registry import StableDiffusion  # noqa: E402
from sonic.models.text import char_tokenizer  # noqa: E402


@dataclass(frozen=True)
class Size:
    unet_config: str
    text: dict  # CLIPTextConfig
    vae_channels: tuple[int, ...]
    vae_groups: int
    resolution: int
    steps: int
    batch: int  # stage-2 training batch
    audio_dim: int
    projector: dict
    blip2: dict  # Blip2Settings fields
    blip2_vocab: int
    caption_batch: int


SIZES = {
    "paper": Size(
        unet_config="workflow/configs/unet_sd14.json",
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                  num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu"),
        vae_channels=(128, 256, 512, 512), vae_groups=32, resolution=512, steps=50, batch=6, audio_dim=512,
        projector=dict(num_tokens=77, num_blocks=4, num_heads=8, attn_dim=512),
        blip2=dict(image_size=224, patch_size=14, vision_hidden=1408, vision_layers=39, vision_heads=16,
                   qformer_hidden=768, qformer_layers=12, qformer_heads=12, num_query_tokens=32, text_hidden=2560,
                   text_layers=32, text_heads=32, mlp_ratio=4, max_positions=2048),
        blip2_vocab=50272, caption_batch=16,
    ),
    "tiny": Size(
        unet_config="workflow/configs/unet_demo.json",
        text=dict(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=77),
        vae_channels=(16, 32), vae_groups=8, resolution=32, steps=2, batch=2, audio_dim=32,
        projector=dict(num_tokens=8, num_blocks=2, num_heads=2, attn_dim=16),
        blip2=dict(image_size=32, patch_size=16, vision_hidden=32, vision_layers=1, vision_heads=2, qformer_hidden=32,
                   qformer_layers=1, qformer_heads=2, num_query_tokens=4, text_hidden=32, text_layers=1,
                   text_heads=2, mlp_ratio=2, max_positions=64),
        blip2_vocab=600, caption_batch=2,
    ),
}
VIT_G_INTERMEDIATE = 6144  # EVA ViT-g's MLP width (not a multiple of its 1408 hidden size)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, repeats: int) -> dict:
    """Median seconds of ``repeats`` calls after one warm-up call, and the peak GPU memory over them (GiB)."""
    fn()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"seconds": round(statistics.median(times), 4), "peak_gib": None if peak is None else round(peak, 2)}


def stable_diffusion(size: Size, device: torch.device, dtype: torch.dtype) -> StableDiffusion:
    """Random-weight SD-1.x components at ``size`` (SD-1.4's scheduler settings)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(json.loads((ROOT / size.unet_config).read_text()))
    n = len(size.vae_channels)
    vae = AutoencoderKL(block_out_channels=size.vae_channels, down_block_types=("DownEncoderBlock2D",) * n,
                        up_block_types=("UpDecoderBlock2D",) * n, layers_per_block=2, latent_channels=4,
                        norm_num_groups=size.vae_groups, sample_size=size.resolution)
    text_encoder = CLIPTextModel(CLIPTextConfig(**size.text, projection_dim=size.text["hidden_size"]))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    tokenizer = char_tokenizer()
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval().to(device=device, dtype=dtype)
    return StableDiffusion(unet, vae, text_encoder, tokenizer, scheduler)


def sonic_parts(sd: StableDiffusion, size: Size, device: torch.device, dtype: torch.dtype):
    adapters = install_adapters(sd.unet, "mid_and_decoder")
    with torch.no_grad():
        for _, m in adapters.modules():
            m.gamma.fill_(1.0)  # open gates: the audio branch runs at full cost
    projector = AudioProjector(ProjectorConfig(audio_dim=size.audio_dim, token_dim=sd.unet.config.cross_attention_dim,
                                               **size.projector)).to(device=device, dtype=dtype).eval()
    adapters_to(adapters, device, dtype)
    return projector, adapters


def adapters_to(adapters, device, dtype) -> None:
    for _, m in adapters.modules():
        m.to(device=device, dtype=dtype)


def bench_generation(size: Size, device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    from diffusers import StableDiffusionPipeline

    from sonic.models.pipeline import SonicPipeline

    sd = stable_diffusion(size, device, dtype)
    projector, adapters = sonic_parts(sd, size, device, dtype)
    pipe = SonicPipeline.from_sd(sd, projector=projector, adapters=adapters)
    audio = torch.nn.functional.normalize(torch.randn(1, size.audio_dim), dim=-1)
    kwargs = dict(num_inference_steps=size.steps, guidance_scale=8.0)
    ours = measure(lambda: pipe(audio, prompt="a photo of a forest", seeds=(0,), height=size.resolution,
                                width=size.resolution, progress=False, **kwargs), device, repeats)
    adapters.remove()  # the same UNet, back to its original modules
    plain = StableDiffusionPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet,
                                    scheduler=sd.scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
    plain.set_progress_bar_config(disable=True)
    generator = lambda: torch.Generator("cpu").manual_seed(0)  # noqa: E731
    base = measure(lambda: plain("a photo of a forest", height=size.resolution, width=size.resolution,
                                 generator=generator(), output_type="pt", **kwargs), device, repeats)
    return {"what": f"generation {size.steps} steps {size.resolution} px, audio + text guidance", "ours": ours,
            "plain": base}


def bench_training(size: Size, device: torch.device, repeats: int) -> dict:
    """fp32 weights, bf16 autocast (as accelerate's mixed_precision bf16 trains)."""
    from sonic.training.stage2 import Stage2Model

    sd = stable_diffusion(size, device, torch.float32)
    latent = size.resolution // 8
    g = torch.Generator().manual_seed(0)
    noisy = torch.randn(size.batch, 4, latent, latent, generator=g).to(device)
    noise = torch.randn(size.batch, 4, latent, latent, generator=g).to(device)
    t = torch.randint(0, 1000, (size.batch,), generator=g).to(device)
    text = torch.randn(size.batch, 77, sd.unet.config.cross_attention_dim, generator=g).to(device)
    clap = torch.nn.functional.normalize(torch.randn(size.batch, size.audio_dim, generator=g), dim=-1).to(device)
    keep = torch.ones(size.batch, dtype=torch.bool, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)

    projector, adapters = sonic_parts(sd, size, device, torch.float32)
    model = Stage2Model(sd.unet, projector.train())
    params = list(adapters.parameters()) + list(projector.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def ours_step():
        with autocast:
            loss = torch.nn.functional.mse_loss(model(noisy, t, text, clap, keep).float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ours = measure(ours_step, device, repeats)
    adapters.remove()
    optimizer.state.clear()  # free its moments before the plain fine-tune allocates its own
    unet = sd.unet.requires_grad_(True).train()
    plain_opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)

    def plain_step():
        with autocast:
            loss = torch.nn.functional.mse_loss(unet(noisy, t, text).sample.float(), noise)
        loss.backward()
        plain_opt.step()
        plain_opt.zero_grad(set_to_none=True)

    base = measure(plain_step, device, repeats)
    return {"what": f"training step, batch {size.batch}, bf16 autocast (ours: stage 2; plain: UNet fine-tune)",
            "ours": ours, "plain": base}


def bench_captioning(size: Size, device: torch.device, dtype: torch.dtype, repeats: int) -> dict:
    import numpy as np
    from PIL import Image

    from sonic.data.features import caption_frames
    from sonic.demo.pretrain.blip2 import Blip2Settings, blip2_config, build_processor, build_tokenizer

    settings = Blip2Settings(**size.blip2)
    tokenizer = build_tokenizer(["a photo of a forest", "a wooden table"], vocab_size=300)
    config = blip2_config(settings, tokenizer)
    config.text_config.vocab_size = size.blip2_vocab  # OPT's vocabulary size: the LM head's real cost
    if size.blip2["vision_hidden"] == 1408:
        config.vision_config.intermediate_size = VIT_G_INTERMEDIATE
    from transformers import Blip2ForConditionalGeneration

    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval().to(device=device, dtype=dtype)
    processor = build_processor(tokenizer, settings)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(size.caption_batch)]
    tokens = 30 if size.blip2["vision_hidden"] == 1408 else 4
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, im in enumerate(images):
            paths.append(str(Path(tmp, f"{i}.png")))
            im.save(paths[-1])
        ours = measure(lambda: caption_frames(model, processor, paths, batch_size=size.caption_batch,
                                              max_new_tokens=tokens, progress=False, min_new_tokens=tokens),
                       device, repeats)

    def plain():
        inputs = processor(images=images, return_tensors="pt").to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)

    base = measure(plain, device, repeats)
    return {"what": f"BLIP-2 captioning, batch {size.caption_batch}, {tokens} new tokens", "ours": ours,
            "plain": base}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="paper")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=["generation", "training", "captioning"])
    args = ap.parse_args(argv)
    size, device = SIZES[args.size], torch.device(args.device)
    half = torch.float16 if device.type == "cuda" else torch.float32  # inference dtype (SD and BLIP-2 on GPU)
    runs = {"generation": lambda: bench_generation(size, device, half, args.repeats),
            "training": lambda: bench_training(size, device, args.repeats),
            "captioning": lambda: bench_captioning(size, device, torch.bfloat16 if device.type == "cuda"
                                                   else torch.float32, args.repeats)}
    results = []
    for name in args.only or list(runs):
        result = {"benchmark": name, "size": args.size, "device": str(device), **runs[name]()}
        result["ratio"] = round(result["ours"]["seconds"] / result["plain"]["seconds"], 3)
        print(json.dumps(result), flush=True)
        results.append(result)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(json.dumps({"summary": {r["benchmark"]: r["ratio"] for r in results}, "gpu": gpu,
                      "torch": torch.__version__}))
    return results


if __name__ == "__main__":
    main()
