"""Hashes of every Pillow-dependent array the pipeline computes, on a built workflow's frames and generated images:
run it under two Pillow releases and compare the lines (docs/app.md: the Pillow pin).

    python benchmarks/pillow_equivalence.py [--results results] [--clip results/demo/models/clip] [--every 4 40]

Covers: PNG decode, ``sonic.images.load_image`` (shorter-side resize + centre crop) at 64/256/299 px, the training
``FrameStore``, the figure grids' bicubic resize, the CLIP image processor's input, PNG encoding (bytes) and
``ImageDraw`` text.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--clip", default="results/demo/models/clip", help="a CLIP folder (its image processor)")
    ap.add_argument("--every", type=int, nargs=2, default=(4, 40), help="take every N-th frame / generated image")
    args = ap.parse_args(argv)

    import numpy as np
    import PIL
    from PIL import Image, ImageDraw
    from transformers import CLIPImageProcessor

    from sonic.images import load_image
    from sonic.training.data import FrameStore

    root = Path(args.results)
    frames = [str(p) for p in sorted(root.glob("data/*/shards/*/frames/*.png"))[:: args.every[0]]]
    generated = [str(p) for p in sorted(root.glob("generated/*/*/*.png"))[:: args.every[1]]]
    if not frames:
        print(f"no frames under {root}/data/*/shards/*/frames", file=sys.stderr)
        return 2
    names = ["decode", "load64", "load256", "load299", "framestore", "bicubic", "clip", "png_bytes", "png_pixels",
             "draw"]
    h = {k: hashlib.sha256() for k in names}
    processor = CLIPImageProcessor.from_pretrained(args.clip)
    store = FrameStore(frames, 64, 64)
    for i, path in enumerate(frames + generated):
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        a = np.asarray(rgb)
        h["decode"].update(a.tobytes())
        for size in (64, 256, 299):
            h[f"load{size}"].update(load_image(path, size).tobytes())
        if i < len(frames):
            h["framestore"].update(store.frame(i).numpy().tobytes())
        h["bicubic"].update(np.asarray(rgb.resize((96, 96), Image.BICUBIC)).tobytes())
        h["clip"].update(processor(images=[rgb], return_tensors="pt")["pixel_values"].numpy().tobytes())
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", optimize=False)
        h["png_bytes"].update(buf.getvalue())
        h["png_pixels"].update(np.asarray(Image.open(io.BytesIO(buf.getvalue()))).tobytes())
        drawn = rgb.copy()
        ImageDraw.Draw(drawn).text((2, 2), "fire crackling 0.25", fill=(255, 255, 255))
        h["draw"].update(np.asarray(drawn).tobytes())
    print(json.dumps({"pillow": PIL.__version__, "images": len(frames) + len(generated),
                      **{k: v.hexdigest()[:16] for k, v in h.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
