"""Tiny SD-1.x-shaped components built inside the tests (CPU, random weights, seconds to build).

The UNet has the SD-1.4 block types and counts, so layer numbering (down0..5, mid, up3..11) holds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

CROSS_DIM = 32
AUDIO_DIM = 24


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32, 32, 32),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=CROSS_DIM,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    return unet.requires_grad_(False).eval()


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=16,
    )
    return vae.requires_grad_(False).eval()


def write_tokenizer(folder: Path) -> CLIPTokenizer:
    """A byte-level BPE vocabulary with no merges: every character is a token (sonic.models.text.char_tokenizer)."""
    from sonic.models.text import char_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok = char_tokenizer()
    tok.save_pretrained(folder)
    return tok


def tiny_text_encoder(vocab_size: int, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    cfg = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=CROSS_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        eos_token_id=vocab_size - 1,
        bos_token_id=vocab_size - 2,
    )
    return CLIPTextModel(cfg).requires_grad_(False).eval()


def tiny_scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def write_sd_folder(root: Path) -> Path:
    """A Stable-Diffusion-layout folder (unet/ vae/ text_encoder/ tokenizer/ scheduler/) of tiny models."""
    tok = write_tokenizer(root / "tokenizer")
    tiny_unet().save_pretrained(root / "unet")
    tiny_vae().save_pretrained(root / "vae")
    tiny_text_encoder(len(tok)).save_pretrained(root / "text_encoder")
    tiny_scheduler().save_pretrained(root / "scheduler")
    return root


def tiny_config_dict(sd: Path, **overrides) -> dict:
    data = {
        "profile": "test",
        "seed": 0,
        "models": {"sd": str(sd)},
        "audio_encoder": {"embed_dim": AUDIO_DIM, "sample_rate": 48000},
        "projector": {"num_tokens": 5, "num_blocks": 4, "num_heads": 2, "attn_dim": 16},
        "adapters": {"placement": "mid_and_decoder"},
        "generation": {"steps": 3, "guidance_scale": 8.0, "resolution": 16, "batch_size": 4},
        "data": {"datasets": {"ravdess": {"format": "ravdess", "root": str(sd.parent / "ravdess")}}},
    }
    data.update(overrides)
    return data


def write_clap_folder(folder: Path, projection_dim: int = AUDIO_DIM, seed: int = 0) -> Path:
    """A tiny transformers ClapModel + ClapFeatureExtractor (48 kHz, 1 s) saved like a real CLAP folder."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    torch.manual_seed(seed)
    audio = dict(depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1], patch_embeds_hidden_size=16, hidden_size=128,
                 projection_dim=projection_dim, spec_size=256, num_mel_bins=64, window_size=8, enable_fusion=False)
    text = dict(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                projection_dim=projection_dim, max_position_embeddings=40)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=projection_dim)).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=64, sampling_rate=48000, max_length_s=1, truncation="rand_trunc",
                         padding="repeatpad").save_pretrained(folder)
    return folder


def write_clip_folder(folder: Path) -> Path:
    """A tiny CLIP folder (model, tokenizer, image processor) whose text tower is CROSS_DIM wide."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok = write_tokenizer(folder)
    torch.manual_seed(0)
    text = dict(vocab_size=len(tok), hidden_size=CROSS_DIM, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=16,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16,
                  patch_size=8, projection_dim=16)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def write_fid_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny FID network folder (``sonic pretrain fid``'s format) with random weights, 16 features at 16 px."""
    from sonic.metrics.fidnet import FidNet, FidNetConfig, save_fidnet

    torch.manual_seed(seed)
    return save_fidnet(FidNet(FidNetConfig(image_size=16, widths=(8, 16), num_classes=2)).eval(), folder, ["a", "b"])


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def square_pairs(root: Path, per_label: int = 3, split: str = "train", seed: int = 0) -> list:
    """Coloured squares on grey, one label per colour, written as 32x32 PNGs (training pairs of the miniature
    model tests)."""
    import numpy as np
    from PIL import Image

    from sonic.demo.pretrain.data import Pair

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    pairs = []
    for label, colour in COLOURS.items():
        for k in range(per_label):
            img = np.full((32, 32, 3), 90, np.uint8)
            x, y = rng.integers(0, 16, 2)
            img[y:y + 16, x:x + 16] = colour
            path = root / f"{split}_{label}_{k}.png"
            Image.fromarray(img).save(path)
            pairs.append(Pair(f"{split}_{label}_{k}", "toy", label, str(path), "", split,
                              f"a photo of a {label} square"))
    return pairs
