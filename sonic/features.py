"""Feature caches computed once per dataset and reused by every downstream rule (SPEC §1).

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
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from sonic.audio import load_audio
from sonic.data.tables import read_csv, write_csv
from sonic.models.audio_encoder import AudioEncoder

log = logging.getLogger(__name__)


def compute_clap_cache(
    encoder: AudioEncoder, manifest: str | Path, out: str | Path, index_out: str | Path, batch_size: int = 16,
    encoder_name: str = "",
) -> torch.Tensor:
    table = read_csv(manifest)
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
