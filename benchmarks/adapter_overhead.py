"""Forward-time overhead of the default gated adapters on the SD-1.4-size UNet (random weights).

Measures, in one process, UNet forward time at batch 2 with 64x64 latents (512 px images) without adapters
and with the default ``mid_and_decoder`` adapters fed 77 audio tokens, alternating the two so that drift in
machine load hits both alike; prints medians and minima. Target: ratio <= 1.10.

    python benchmarks/adapter_overhead.py [--repeats 5] [--device cpu] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from sonic.models.adapters import install_adapters

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--unet-config", default=str(ROOT / "workflow/configs/unet_sd14.json"))
    ap.add_argument("--placement", default="mid_and_decoder")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(json.loads(Path(args.unet_config).read_text()))
    unet = unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    x = torch.randn(args.batch, 4, args.latent, args.latent, device=device, dtype=dtype)
    t = torch.full((args.batch,), 500, device=device)
    text = torch.randn(args.batch, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    audio = torch.randn(args.batch, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(with_audio: bool) -> float:
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            kwargs = {"audio_tokens": audio} if with_audio else None
            unet(x, t, text, cross_attention_kwargs=kwargs)
        sync()
        return time.perf_counter() - start

    base_times, adapted_times = [], []
    handle = None
    run(False)  # warm-up
    for i in range(args.repeats):
        if handle is not None:
            handle.remove()
        base_times.append(run(False))
        handle = install_adapters(unet, args.placement)
        with torch.no_grad():
            for _, m in handle.modules():
                m.gamma.fill_(0.1)
        if i == 0:
            run(True)  # warm-up with adapters
        adapted_times.append(run(True))
        print(f"repeat {i}: base {base_times[-1]:.3f}s  adapted {adapted_times[-1]:.3f}s", flush=True)

    base, adapted = statistics.median(base_times), statistics.median(adapted_times)
    base_min, adapted_min = min(base_times), min(adapted_times)
    result = {
        "device": str(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "latent": args.latent,
        "placement": args.placement,
        "adapter_params": handle.num_parameters(),
        "base_forward_s": round(base, 4),
        "adapted_forward_s": round(adapted, 4),
        "ratio": round(adapted / base, 4),
        "base_forward_min_s": round(base_min, 4),
        "adapted_forward_min_s": round(adapted_min, 4),
        "ratio_of_minima": round(adapted_min / base_min, 4),
        "target_ratio": 1.10,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
