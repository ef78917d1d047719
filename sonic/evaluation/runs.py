"""Generation runs of the evaluation protocol (docs/evaluation.md): the evaluation subset of a dataset (the ``eval``
clips of the validation split, i.e. audios per class) x the configured seeds, generated once per method and saved as
``<folder>/<clip_id>_<seed>.png`` with a ``manifest.csv`` of (clip_id, seed, label, method, path).

The same layout, ``<root>/<method>/<dataset>/<clip_id>_<seed>.png``, is what external systems (CoDi, ImageBind,
SGSIM, Sound2Scene, TempoTokens) are scored from (docs/evaluation.md#other-systems).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from sonic.data.features import load_clap_cache
from sonic.data.tables import read_csv, read_manifest, write_csv

log = logging.getLogger(__name__)

RUN_COLUMNS = ["clip_id", "seed", "label", "method", "path"]


def image_name(clip_id: str, seed: int) -> str:
    return f"{clip_id}_{int(seed)}.png"


def eval_jobs(manifest: str | Path, seeds: int) -> pd.DataFrame:
    """(clip_id, seed, label) for every evaluation clip x seed 0..seeds-1, clip-major, in manifest order."""
    table = read_manifest(manifest)
    chosen = table[table["eval"].astype(str).str.lower() == "true"]
    if chosen.empty:
        raise ValueError(f"{manifest}: no evaluation clips (column `eval`); check data.eval_audios_per_class")
    rows = [(str(c), s, str(lab)) for c, lab in zip(chosen["clip_id"], chosen["label"]) for s in range(seeds)]
    return pd.DataFrame(rows, columns=["clip_id", "seed", "label"])


def generate_run(generator, jobs: pd.DataFrame, clap: str | Path, clap_index: str | Path, out_dir: str | Path,
                 method: str, steps: int, guidance_scale: float, batch_size: int = 8,
                 prompt: str | None = None) -> pd.DataFrame:
    """Generate every (clip, seed) of ``jobs`` with ``generator`` (the :class:`~sonic.models.pipeline.SonicPipeline`
    call interface: CLAP embeddings, seeds -> images, audio-major) and write the images and ``manifest.csv``."""
    from sonic.images import to_pil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    embeddings, rows = load_clap_cache(clap, clap_index)
    clips = list(dict.fromkeys(jobs["clip_id"]))
    seeds = sorted(set(int(s) for s in jobs["seed"]))
    missing = [c for c in clips if c not in rows]
    if missing:
        raise ValueError(f"{clap_index}: evaluation clips missing from the CLAP cache: {missing[:3]}")
    written = []
    per_call = max(1, batch_size // max(1, len(seeds)))  # clips per generator call
    bar = tqdm(total=len(clips) * len(seeds), desc=f"generate {method}", unit="img")
    for start in range(0, len(clips), per_call):
        chunk = clips[start : start + per_call]
        embeds = embeddings[torch.tensor([rows[c] for c in chunk])]
        images = generator(embeds, prompt=prompt, seeds=seeds, num_inference_steps=steps,
                           guidance_scale=guidance_scale, batch_size=batch_size, progress=False)
        for k, image in enumerate(to_pil(images)):
            clip_id, seed = chunk[k // len(seeds)], seeds[k % len(seeds)]
            path = out / image_name(clip_id, seed)
            image.save(path)
            written.append((clip_id, seed, str(path)))
        bar.update(len(images))
    bar.close()
    done = pd.DataFrame(written, columns=["clip_id", "seed", "path"])
    table = jobs.merge(done, on=["clip_id", "seed"], how="left").assign(method=method)[RUN_COLUMNS]
    write_csv(table, out / "manifest.csv")
    write_machine(out)
    log.info("%s: %d images -> %s", method, len(table), out)
    return table


def collect_folder(folder: str | Path, jobs: pd.DataFrame, method: str) -> tuple[pd.DataFrame, list[str]]:
    """The images of ``jobs`` found in ``folder`` (``<clip_id>_<seed>.png``) and the names of the missing ones."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of generated images for {method}")
    found, missing = [], []
    for clip_id, seed, label in jobs[["clip_id", "seed", "label"]].itertuples(index=False):
        path = folder / image_name(clip_id, seed)
        (found if path.is_file() else missing).append((clip_id, int(seed), label, method, str(path)))
    if missing:
        log.warning("%s: %d of %d expected images are missing in %s, e.g. %s", method, len(missing), len(jobs),
                    folder, Path(missing[0][4]).name)
    return pd.DataFrame(found, columns=RUN_COLUMNS), [Path(m[4]).name for m in missing]


def read_run(folder: str | Path) -> pd.DataFrame:
    return read_csv(Path(folder) / "manifest.csv")


MACHINE_FILE = "machine.json"  # in a run folder: where its images were made (sonic.machine.describe)


def write_machine(folder: Path) -> None:
    import json

    from sonic.machine import describe

    (folder / MACHINE_FILE).write_text(json.dumps(describe(), indent=2) + "\n")
