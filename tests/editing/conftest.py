"""Tiny SonicPipelines for the editing tests (CPU, random weights, adapters with open gates)."""

import numpy as np
import pytest
import torch
from PIL import Image

from sonic.models.adapters import install_adapters
from sonic.models.pipeline import SonicPipeline
from sonic.models.projector import AudioProjector, ProjectorConfig
from tests.tiny import AUDIO_DIM, CROSS_DIM, tiny_scheduler, tiny_text_encoder, tiny_unet, tiny_vae, write_tokenizer


def make_pipe(folder, prediction_type: str = "epsilon") -> SonicPipeline:
    tok = write_tokenizer(folder / "tok")
    unet = tiny_unet()
    adapters = install_adapters(unet)
    torch.manual_seed(0)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in list(projector.parameters()) + list(adapters.parameters()):
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        for _, m in adapters.modules():
            m.gamma.fill_(0.8)
    scheduler = tiny_scheduler()
    if prediction_type != "epsilon":
        scheduler = scheduler.__class__.from_config(scheduler.config, prediction_type=prediction_type)
    return SonicPipeline(unet=unet, vae=tiny_vae(), text_encoder=tiny_text_encoder(len(tok)), tokenizer=tok,
                         scheduler=scheduler, projector=projector, adapters=adapters)


@pytest.fixture
def pipe(tmp_path):
    return make_pipe(tmp_path)


@pytest.fixture
def source_image() -> Image.Image:
    """A 16x16 picture with structure: a bright square on a gradient."""
    y, x = np.mgrid[0:16, 0:16]
    img = np.stack([x * 12, y * 12, np.full_like(x, 90)], -1).astype(np.uint8)
    img[4:11, 5:12] = (230, 200, 40)
    return Image.fromarray(img)


def audio_embeds(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, AUDIO_DIM, generator=torch.Generator().manual_seed(seed))
