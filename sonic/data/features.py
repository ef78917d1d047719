"""Feature caches computed once per dataset and reused by every downstream rule (docs/development.md#what-is-here).

Captions: BLIP-2 captions of every training frame, one CSV per dataset (clip_id, caption), used by stage 1's
MSE target (the SD text encoder's tokens of the caption).

CLAP cache: one embedding per manifest clip, in manifest order, stored as one safetensors file
(``embeddings``: (N, d) float32) plus an index CSV (row -> clip_id), with the encoder's name and size in the
file's metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sonic.audio import load_audio
from sonic.data.tables import read_csv, read_manifest, write_csv
from sonic.models.audio_encoder import AudioEncoder

log = logging.getLogger(__name__)


def compute_clap_cache(
    encoder: AudioEncoder, manifest: str | Path, out: str | Path, index_out: str | Path, batch_size: int = 16,
    encoder_name: str = "",
) -> torch.Tensor:
    table = read_manifest(manifest)
    chunks = []
    for start in tqdm(range(0, len(table), batch_size), desc="clap", unit="batch"):
        rows = table.iloc[start : start + batch_size]
        waves = [load_audio(p, encoder.sample_rate) for p in rows["audio"]]
        chunks.append(encoder.embed(waves))
    embeddings = torch.cat(chunks) if chunks else torch.zeros(0, encoder.embed_dim)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file({"embeddings": embeddings.contiguous()}, str(out),
              metadata={"encoder": encoder_name, "embed_dim": str(encoder.embed_dim),
                        "sample_rate": str(encoder.sample_rate)})
    write_csv(pd.DataFrame({"row": np.arange(len(table)), "clip_id": table["clip_id"]}), index_out)
    log.info("CLAP cache %s: %d clips x %d", out, len(table), encoder.embed_dim)
    return embeddings


def load_clap_cache(path: str | Path, index: str | Path) -> tuple[torch.Tensor, dict[str, int]]:
    """(embeddings (N, d), clip_id -> row)."""
    embeddings = load_file(str(path))["embeddings"]
    idx = read_csv(index)
    if len(idx) != len(embeddings):
        raise ValueError(f"{index}: {len(idx)} rows but {path} holds {len(embeddings)} embeddings")
    return embeddings, dict(zip(idx["clip_id"], idx["row"], strict=True))


@torch.no_grad()
def caption_frames(model, processor, frame_paths: list[str], batch_size: int = 16, max_new_tokens: int = 30,
                   progress: bool = True, **generate_kwargs) -> list[str]:
    """Caption image files with a ``Blip2ForConditionalGeneration`` and its ``Blip2Processor``, in batches.

    Image-only prompts, as in BLIP-2 captioning; greedy decoding unless ``generate_kwargs`` say otherwise (LAVIS'
    default was beam search with 5 beams: pass ``num_beams=5``). Inputs follow the model's device and dtype, so a
    half-precision checkpoint on a GPU works as the miniature does on CPU. Returns one stripped caption per path.
    """
    from tqdm.auto import tqdm

    generate_kwargs = {"do_sample": False, **generate_kwargs}
    was_training = model.training
    model.eval()
    captions: list[str] = []
    starts = range(0, len(frame_paths), batch_size)
    for start in tqdm(starts, desc="captioning", unit="batch", disable=not progress):
        images = []
        for path in frame_paths[start:start + batch_size]:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        inputs = processor(images=images, return_tensors="pt").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, **generate_kwargs)
        captions += [c.strip() for c in processor.batch_decode(out, skip_special_tokens=True)]
    model.train(was_training)
    return captions


def compute_captions(model, processor, manifest: str | Path, out: str | Path, batch_size: int = 16,
                     splits: tuple[str, ...] = ("train",)) -> pd.DataFrame:
    """BLIP-2 captions of the frames of ``manifest`` (clip_id, caption), written once per dataset."""
    table = read_manifest(manifest)
    table = table[table["split"].isin(splits)]
    captions = caption_frames(model, processor, table["frame"].tolist(), batch_size=batch_size)
    result = pd.DataFrame({"clip_id": table["clip_id"].tolist(), "caption": captions})
    write_csv(result, out)
    log.info("captions %s: %d frames", out, len(result))
    return result
