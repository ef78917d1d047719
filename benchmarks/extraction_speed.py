"""Extraction throughput against bare ffmpeg doing the same decoding, measured in one run.

For every source video of the configured datasets (synthesised at the requested size when the config's
synthetic world is missing), times ``sonic.data.extract.extract_videos`` (probe, one frame-select decode, one
audio decode, PNG + WAV writing, rejects) and then the bare ffmpeg commands that decode the same frames and
audio to /dev/null. Prints clips/s for both and the ratio (target: ours within 1.5x of bare ffmpeg).

    python benchmarks/extraction_speed.py [--config config.yaml] [--size demo]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import ffmpeg

from sonic import config as config_mod
from sonic.data import media
from sonic.demo import synth
from sonic.data.datasets import index_dataset
from sonic.data.extract import extract_videos, plan_segments
from sonic.data.run import dataset_spec, extract_settings

ROOT = Path(__file__).resolve().parents[1]
WRITERS = {"greatest_hits": ["synth_greatest_hits"], "landscape": ["synth_landscape", "synth_into_the_wild"],
           "ravdess": ["synth_ravdess"]}


def bare_ffmpeg(video, settings) -> None:
    """The decoding our extraction does, as plain ffmpeg commands with outputs discarded."""
    info = media.probe(video.video)
    duration = info.duration or 0.0
    segments, _ = plan_segments(video, duration, settings)
    if not segments:
        return
    fps = info.fps or 25.0
    wanted = sorted({int((s.start + s.end) / 2 * fps) for s in segments})
    select = ffmpeg.input(video.video).video.filter("select", "+".join(f"eq(n,{n})" for n in wanted))
    frames = select.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough")
    audio = ffmpeg.input(video.audio or video.video).output(
        "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=settings.sample_rate, map="0:a:0")
    for stream in (frames, audio):
        args = stream.global_args("-nostdin", "-loglevel", "error").compile(cmd=media.ffmpeg_exe())
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--size", default="demo", choices=["smoke", "demo"])
    args = ap.parse_args()
    cfg = config_mod.load(args.config)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos, per_dataset = [], {}
        for name, d in cfg.data.datasets.items():
            spec = dataset_spec(cfg, name)
            if not Path(spec.root).exists():  # synthesise into tmp with the same layout
                raw = tmp / "raw" / name
                roots = [getattr(synth, w)(raw, size=args.size, seed=cfg.seed) for w in WRITERS[spec.format]]
                spec = type(spec)(spec.name, spec.format, str(roots[0]),
                                  str(roots[1]) if len(roots) > 1 else None, spec.aliases)
            vids, _ = index_dataset(spec)
            per_dataset[name] = (vids, extract_settings(cfg, spec.format))
            videos += vids

        start = time.perf_counter()
        clips = 0
        for name, (vids, settings) in per_dataset.items():
            rows, _ = extract_videos(vids, settings, tmp / "out" / name, progress=False)
            clips += len(rows)
        ours = time.perf_counter() - start

        start = time.perf_counter()
        for name, (vids, settings) in per_dataset.items():
            for v in vids:
                bare_ffmpeg(v, settings)
        bare = time.perf_counter() - start

    print(json.dumps({
        "videos": len(videos),
        "clips": clips,
        "sonic_extract_s": round(ours, 2),
        "bare_ffmpeg_s": round(bare, 2),
        "sonic_clips_per_s": round(clips / ours, 2),
        "bare_ffmpeg_clips_per_s": round(clips / bare, 2),
        "ratio": round(ours / bare, 3),
        "target_ratio": 1.5,
    }, indent=2))


if __name__ == "__main__":
    main()
