"""What the app costs on a config and weights folder: loading the weights, one generation, a first edit (with its
DDIM inversion) and a second edit of the same image (the inversion reused), as the app's Studio runs them (no
browser). On the rehearsal's paper-size random weights it shows the app on the paper path; with imported release
weights, on the release path (Microsoft CLAP 2022).

    python benchmarks/app_latency.py --config workflow/configs/rehearsal.yaml \\
        --weights results/train/landscape/full/weights [--weights results/release/landscape ...] \\
        --audio <clip.wav> --image <frame.png> [--steps 2] [--seeds 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True, action="append", help="one or more weights folders, in turn")
    ap.add_argument("--audio", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--steps", type=int, help="DDIM steps (default: the config's)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--threads", type=int)
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from sonic import config
    from sonic.app.studio import Studio

    if args.threads:
        torch.set_num_threads(args.threads)
    studio = Studio(config.load(args.config), out_dir=tempfile.mkdtemp(prefix="sonic-app-bench-"))
    for weights in args.weights:
        row = {"weights": weights, "threads": torch.get_num_threads()}
        t = time.perf_counter()
        studio.load(weights)
        row["load_s"] = round(time.perf_counter() - t, 2)
        row["encoder"] = type(studio.pipe.audio_encoder).__name__
        t = time.perf_counter()
        images = studio.generate(args.audio, seeds=args.seeds, steps=args.steps)
        row["generate_s"] = round(time.perf_counter() - t, 2)
        row["image_size"] = list(Image.open(images[0].path).size)
        for name in ("edit_first_s", "edit_again_s"):
            t = time.perf_counter()
            result = studio.edit(args.image, args.audio, steps=args.steps)
            row[name] = round(time.perf_counter() - t, 2)
            row[name.replace("_s", "_inversion")] = result.settings["inversion"]
        row["steps"] = images[0].settings["steps"]
        row["peak_rss_gib"] = round(peak_rss_gib(), 2)
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
