"""Tests of the trained competitors (AudioToken, GlueGen); :func:`make_world` builds their tiny inputs."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.tiny import AUDIO_DIM, tiny_config_dict, write_sd_folder

LABELS = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
COMPETITORS = {
    "audiotoken": {"steps": 2, "batch_size": 2, "hidden_dim": 16},
    "gluegen": {"steps": 3, "batch_size": 4, "hidden_dim": 16, "num_heads": 2, "num_layers": 1},
}


def make_world(root: Path) -> tuple:
    """A tiny SD folder and one dataset (3 classes x 3 clips: manifest, frames, CLAP cache + index) and a config
    with small ``competitors`` settings. Returns (config, {manifest, clap, clap_index})."""
    from sonic.config import from_dict

    sd = write_sd_folder(root / "sd")
    rows = []
    for label in LABELS:
        for k in range(3):
            frame = root / "frames" / f"{label}{k}.png"
            frame.parent.mkdir(exist_ok=True)
            img = np.full((20, 24, 3), 100, np.uint8)
            img[4:14, 4 + k:14 + k] = COLOURS[label]
            Image.fromarray(img).save(frame)
            rows.append(f"{label}{k},toy,{label},{frame},,{'val' if k == 2 and label == 'red' else 'train'}")
    manifest = root / "toy" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("clip_id,dataset,label,frame,audio,split\n" + "\n".join(rows) + "\n")
    g = torch.Generator().manual_seed(0)
    centres = {lab: torch.randn(AUDIO_DIM, generator=g) for lab in LABELS}
    ids = [r.split(",")[0] for r in rows]
    emb = torch.stack([centres[i[:-1]] + 0.1 * torch.randn(AUDIO_DIM, generator=g) for i in ids])
    save_file({"embeddings": emb.contiguous()}, str(root / "clap.safetensors"))
    (root / "clap_index.csv").write_text("row,clip_id\n" + "\n".join(f"{i},{c}" for i, c in enumerate(ids)) + "\n")
    cfg = from_dict(tiny_config_dict(sd, training={"checkpoint_every": 2, "checkpoints_total_limit": 1},
                                     competitors=COMPETITORS))
    files = dict(manifest=str(manifest), clap=str(root / "clap.safetensors"), clap_index=str(root / "clap_index.csv"))
    return cfg, files


def first_unet_input(generator, *args, **kwargs) -> torch.Tensor:
    """The latents the generator's first UNet call receives (the unconditional half of the CFG batch)."""
    seen = []
    handle = generator.unet.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach().clone()))
    try:
        generator(*args, **kwargs)
    finally:
        handle.remove()
    return seen[0].chunk(2)[0]
