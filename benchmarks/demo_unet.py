"""Step times of the demo profile's miniature UNet on the CPU, for its head layout against alternatives.

For each ``--heads`` layout (the ``attention_head_dim`` of the UNet config: one count for every level, or one
per level), in one process and one torch thread (the demo's setting per job), with random weights:

* ``pretrain``: one SD pretraining step (forward + backward through the whole UNet), batch 16, 16x16 latents;
* ``stage2``: one stage-2 step (frozen UNet, the default ``mid_and_decoder`` adapters and their gradients);
* ``sample``: one guided sampling step (batch 32 = 16 images x 2 guidance branches, no gradients).

Prints the median milliseconds per step of each. The demo's layout (1, 2, 4, 4: head width 32 everywhere) was
chosen with it over four heads at every level (8-wide heads at the 32-channel level).

    python benchmarks/demo_unet.py [--heads 1,2,4,4 4] [--repeats 5] [--threads 1]
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


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench(config: dict, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config)
    side, width = config["sample_size"], config["cross_attention_dim"]
    x, t = torch.randn(16, config["in_channels"], side, side), torch.randint(1000, (16,))
    text, audio = torch.randn(16, 77, width), torch.randn(16, 77, width)

    def pretrain():
        unet.zero_grad(set_to_none=True)
        unet(x, t, text).sample.square().mean().backward()

    out = {"pretrain": median_ms(pretrain, repeats)}
    unet.requires_grad_(False)
    adapters = install_adapters(unet, "mid_and_decoder")
    for p in adapters.parameters():
        p.requires_grad_(True)
    for _, module in adapters.modules():
        module.gamma.data.fill_(0.5)  # open gates: the attention runs as in training

    def stage2():
        unet(x, t, text, cross_attention_kwargs={"audio_tokens": audio}).sample.square().mean().backward()

    out["stage2"] = median_ms(stage2, repeats)
    x2, t2, text2, audio2 = (torch.cat([v, v]) for v in (x, t, text, audio))

    @torch.no_grad()
    def sample():
        unet(x2, t2, text2, cross_attention_kwargs={"audio_tokens": audio2})

    out["sample"] = median_ms(sample, repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--unet-config", default=str(ROOT / "workflow/configs/unet_demo.json"))
    ap.add_argument("--heads", nargs="+", default=["1,2,4,4", "4"],
                    help="head layouts: one count, or one per level separated by commas")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = {k: v for k, v in json.loads(Path(args.unet_config).read_text()).items() if not k.startswith("_")}
    print(f"{'heads':>10} {'pretrain ms':>12} {'stage2 ms':>10} {'sample ms':>10}")
    for layout in args.heads:
        counts = [int(c) for c in layout.split(",")]
        config = dict(base, attention_head_dim=counts[0] if len(counts) == 1 else counts)
        r = bench(config, args.repeats)
        print(f"{layout:>10} {r['pretrain']:12.0f} {r['stage2']:10.0f} {r['sample']:10.0f}")


if __name__ == "__main__":
    main()
