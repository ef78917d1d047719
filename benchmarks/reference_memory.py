"""Peak memory of building the evaluation references for many high-resolution frames.

Writes 1280x720 PNG frames (and 1 s audio clips) to a scratch folder, then, in a fresh process per count, runs
``sonic.evaluation.references.compute_references`` with tiny evaluation models (a miniature CLIP, Wav2CLIP and FID
network, so that the frames, not the models, dominate) and prints the peak resident memory of that process and its
growth over the memory before the call. References are built in batches at the evaluation size, so the peak should not
grow with the number of frames (target: 500 frames within 1.5x of 50 frames).

    python benchmarks/reference_memory.py [--counts 50 500] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def prepare(folder: Path, count: int, width: int, height: int) -> None:
    import numpy as np
    import soundfile as sf
    import torch
    from PIL import Image

    from sonic.models.wav2clip import Wav2Clip, Wav2ClipConfig, save_wav2clip
    from tests.tiny import write_clip_folder, write_fid_folder

    write_clip_folder(folder / "clip")
    write_fid_folder(folder / "fid")
    torch.manual_seed(0)
    save_wav2clip(Wav2Clip(Wav2ClipConfig(base_width=8, blocks=(1, 1, 1, 1), mlp_hidden=32, embed_dim=16)).eval(),
                  folder / "Wav2CLIP.pt")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    for i in range(count):
        Image.fromarray(np.roll(base, 7 * i, axis=1)).save(folder / f"f{i}.png", compress_level=1)
    sf.write(folder / "a.wav", 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)


def child(folder: Path, count: int, resolution: int) -> dict:
    import pandas as pd

    from sonic import config as config_mod
    from sonic.evaluation.references import compute_references
    from tests.tiny import tiny_config_dict

    data = tiny_config_dict(folder / "sd")
    data["models"].update({"clip_ais": str(folder / "clip"), "clip_eval": str(folder / "clip"),
                           "wav2clip": str(folder / "Wav2CLIP.pt"), "fid_features": str(folder / "fid")})
    data["generation"]["resolution"] = resolution
    cfg = config_mod.from_dict(data)
    pd.DataFrame({"clip_id": [f"c{i}" for i in range(count)], "label": ["x", "y"] * (count // 2) + ["x"] * (count % 2),
                  "split": "val", "eval": True, "frame": [str(folder / f"f{i}.png") for i in range(count)],
                  "audio": str(folder / "a.wav")}).to_csv(folder / f"manifest{count}.csv", index=False)
    import torch  # noqa: F401 - loaded before the baseline so that the growth is the references' own

    before = peak_rss_mb()
    start = time.perf_counter()
    compute_references(cfg, folder / f"manifest{count}.csv", folder / f"r{count}.safetensors",
                       folder / f"r{count}.csv", progress=False)
    return {"frames": count, "seconds": round(time.perf_counter() - start, 2), "rss_before_mb": round(before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "growth_mb": round(peak_rss_mb() - before, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[50, 500])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--resolution", type=int, default=512, help="evaluation resolution (paper: 512)")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        print(json.dumps(child(args.dir, args.child, args.resolution)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prepare(folder, max(args.counts), args.width, args.height)
        results = []
        for count in args.counts:
            out = subprocess.run([sys.executable, __file__, "--child", str(count), "--dir", str(folder),
                                  "--resolution", str(args.resolution)], capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    peaks = [r["peak_rss_mb"] for r in results]
    print(json.dumps({"frame_size": f"{args.width}x{args.height}", "resolution": args.resolution, "runs": results,
                      "peak_ratio_largest_to_smallest": round(max(peaks) / min(peaks), 3), "target_ratio": 1.5,
                      "one_float_tensor_of_all_frames_mb": {
                          r["frames"]: round(r["frames"] * args.width * args.height * 3 * 4 / 2**20) for r in results}},
                     indent=2))


if __name__ == "__main__":
    main()
