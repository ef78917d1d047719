"""What the inversion cache saves when one image is edited with K audios (paper §3.5), in one run.

Times, on the same pipeline and source image:

* ``cached``:   K calls of ``edit`` sharing an :class:`InversionCache` (one inversion, then K edits);
* ``batched``:  one ``edit`` call with all K audio embeddings (one inversion, K edits in batches);
* ``uncached``: K calls of ``edit`` without a cache (K x (inversion + edit)).

By default the pipeline is the tiny random SD-1.x-shaped one of the tests; ``--config`` and ``--weights`` load
a real or miniature one (e.g. the demo profile's trained weights folder). Prints seconds and ratios; no asserts.

    python benchmarks/edit_cache.py [--k 4] [--steps 20] [--resolution 32]
    python benchmarks/edit_cache.py --config workflow/configs/smoke.yaml --weights results/.../weights --steps 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def tiny_pipeline():
    """The tests' tiny components (random weights, open gates)."""
    sys.path.insert(0, str(ROOT))
    from sonic.models.adapters import install_adapters
    from sonic.models.pipeline import SonicPipeline
    from sonic.models.projector import AudioProjector, ProjectorConfig
    from tests.tiny import AUDIO_DIM, CROSS_DIM, tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tokenizer

    tok = write_tokenizer(Path(tempfile.mkdtemp()) / "tok")
    unet = tiny_unet()
    adapters = install_adapters(unet)
    with torch.no_grad():
        for _, m in adapters.modules():
            m.gamma.fill_(0.5)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16)).eval()
    return SonicPipeline(unet=unet, vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok,
                         scheduler=tiny_scheduler(), projector=projector, adapters=adapters)


def loaded_pipeline(config: str, weights: str, device: str):
    from sonic import config as config_mod
    from sonic.models.pipeline import SonicPipeline
    from sonic.models.registry import load_stable_diffusion

    return SonicPipeline.from_weights(weights, load_stable_diffusion(config_mod.load(config), device=device))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="workflow config (with --weights): load its SD and our weights")
    ap.add_argument("--weights", help="SonicDiffusion weights folder")
    ap.add_argument("--k", type=int, default=4, help="audios per source image")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--resolution", type=int, help="image size (default: the UNet's native size)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from sonic.editing import InversionCache, edit

    if bool(args.config) != bool(args.weights):
        ap.error("--config and --weights go together")
    pipe = loaded_pipeline(args.config, args.weights, args.device) if args.config else tiny_pipeline()
    size = args.resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    embeds = torch.from_numpy(rng.standard_normal((args.k, pipe.projector.config.audio_dim)).astype(np.float32))
    kw = dict(num_inference_steps=args.steps, guidance_scale=8.0, height=size, width=size)

    def timed(fn) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            fn()
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    edit(pipe, source, embeds[:1], **(kw | {"num_inference_steps": 2}))  # warm-up
    with tempfile.TemporaryDirectory() as folder:
        cache = InversionCache(folder)
        cached = timed(lambda: [edit(pipe, source, embeds[i : i + 1], cache=cache, **kw) for i in range(args.k)])
        hits, misses = cache.hits, cache.misses
    batched = timed(lambda: edit(pipe, source, embeds, batch_size=args.k, **kw))
    uncached = timed(lambda: [edit(pipe, source, embeds[i : i + 1], **kw) for i in range(args.k)])
    print(json.dumps({
        "pipeline": "loaded" if args.config else "tiny",
        "device": str(pipe.device),
        "resolution": size,
        "steps": args.steps,
        "k": args.k,
        "cached_s": round(cached, 3),
        "cache_hits": hits,
        "cache_misses": misses,
        "batched_s": round(batched, 3),
        "uncached_s": round(uncached, 3),
        "uncached_over_cached": round(uncached / cached, 2),
        "uncached_over_batched": round(uncached / batched, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
