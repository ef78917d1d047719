"""Paper-profile architectures built from config on the meta device (no weights, no memory): the classes the
paper profile loads accept the real models' configurations, and their sizes are the published ones."""

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    ClapAudioConfig,
    ClapConfig,
    ClapModel,
    ClapTextConfig,
    CLIPConfig,
    CLIPModel,
    OPTConfig,
)

from sonic.models.wav2clip import Wav2Clip, Wav2ClipConfig


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_clip_vit_l14():
    cfg = CLIPConfig(
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                       "num_hidden_layers": 24, "patch_size": 14, "image_size": 224},
        projection_dim=768,
    )
    with torch.device("meta"):
        model = CLIPModel(cfg)
    assert 420e6 < count(model) < 435e6  # openai/clip-vit-large-patch14: 428M
    assert model.text_model.config.hidden_size == 768  # = SD-1.x cross_attention_dim


def test_clip_vit_b32():
    with torch.device("meta"):
        model = CLIPModel(CLIPConfig(vision_config={"patch_size": 32}, projection_dim=512))
    assert 145e6 < count(model) < 155e6  # openai/clip-vit-base-patch32: 151M


def test_laion_clap_htsat_unfused():
    cfg = ClapConfig(text_config=ClapTextConfig(), audio_config=ClapAudioConfig(enable_fusion=False),
                     projection_dim=512)
    with torch.device("meta"):
        model = ClapModel(cfg)
    assert 150e6 < count(model) < 160e6  # laion/clap-htsat-unfused: 153M
    assert model.config.projection_dim == 512


def test_blip2_opt_2_7b():
    cfg = Blip2Config(
        vision_config={"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
        qformer_config={},
        text_config=OPTConfig(hidden_size=2560, ffn_dim=10240, num_hidden_layers=32, num_attention_heads=32,
                              vocab_size=50272, word_embed_proj_dim=2560).to_dict(),
        num_query_tokens=32,
    )
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(cfg)
    assert 3.6e9 < count(model) < 4.0e9  # Salesforce/blip2-opt-2.7b: 3.74B


def test_wav2clip_official_size():
    with torch.device("meta"):
        model = Wav2Clip(Wav2ClipConfig())
    assert 11.6e6 < count(model) < 11.8e6
