"""Paper-size models with random weights, in the real on-disk formats (``sonic rehearse models``; docs/rehearsal.md).

The rehearsal profile (``workflow/configs/rehearsal.yaml``) runs the paper DAG on this machine before anyone spends
GPU-days on it. No weights can be downloaded, so this module writes, at every location ``models`` names, a model of
the real architecture and size whose weights are random (seeded), saved exactly as the released model is laid out:

==============  ====================================================================================================
``sd``          a Stable Diffusion 1.4 diffusers folder: UNet (859.5M, ``workflow/configs/unet_sd14.json``), VAE
                (83.7M), CLIP ViT-L/14 text encoder (123.1M), ``CLIPTokenizer`` with the real 49,408-token BPE
                vocabulary, SD-1.4's PNDM scheduler config, ``model_index.json``
``clap``        LAION CLAP htsat-unfused (``ClapModel``, ``ClapProcessor``: 48 kHz, 64 mels, 10 s)
``blip2``       BLIP-2 OPT-2.7b (ViT-g, Q-Former, OPT-2.7b; 3.7B parameters) in bf16, with its processor
``clip_ais``    CLIP ViT-B/32 (``CLIPModel``, tokenizer, image processor)
``clip_eval``   CLIP ViT-L/14
``wav2clip``    ``Wav2CLIP.pt``: the official flat state dict (ResNet-18 audio trunk + projection)
``fid_features``  the FID Inception-v3 weights file in the standard layout (``pt_inception-2015-12-05``)
``msclap_2022`` Microsoft CLAP 2022 checkpoint (``{"model": {...}}``), and ``release`` files in the authors' layout
==============  ====================================================================================================

Byte-level BPE vocabularies whose real files cannot be had here (CLAP's RoBERTa, OPT's GPT-2) are synthetic but of
the real size (50,265 entries: the 256 byte symbols, then two-symbol merges, then the special tokens), so the
embedding tables, the LM head and every token id a model can produce have their real shapes. CLIP's vocabulary is
the real one: ``bpe_simple_vocab_16e6.txt.gz`` read out of the ``open_clip_torch`` wheel (pinned, SHA-256 checked)
without installing it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)

OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"
CLIP_VOCAB_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
CLIP_VOCAB_SIZE = 49408
BPE_VOCAB_SIZE = 50265  # RoBERTa's and OPT's (GPT-2's 50,257 merges and bytes + their special tokens)
OPT_LM_ROWS = 50272  # OPT-2.7b's embedding rows (the vocabulary padded to a multiple of 8)
UNET_SD14 = Path(__file__).resolve().parents[2] / "workflow" / "configs" / "unet_sd14.json"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
CLIP_SIZES = {  # openai/clip-vit-base-patch32 and clip-vit-large-patch14
    "B/32": dict(text=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12),
                 vision=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                             patch_size=32, image_size=224), projection_dim=512),
    "L/14": dict(text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
                 vision=dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                             patch_size=14, image_size=224), projection_dim=768),
}


# ---- vocabularies --------------------------------------------------------------------------------------------
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (shared by CLIP, RoBERTa and OPT)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


def clip_vocab_gz(cache: Path, local: str | Path | None = None) -> bytes:
    """The bytes of CLIP's ``bpe_simple_vocab_16e6.txt.gz``: from ``local`` if given, else out of the pinned
    ``open_clip_torch`` wheel (``pip download --no-deps`` into ``cache``); the SHA-256 is checked either way."""
    if local is None:
        cache.mkdir(parents=True, exist_ok=True)
        wheels = sorted(cache.glob("open_clip_torch-*.whl"))
        if not wheels:
            log.info("downloading %s (the wheel only, for CLIP's vocabulary file)", OPEN_CLIP_WHEEL)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache),
                            OPEN_CLIP_WHEEL], check=True)
            wheels = sorted(cache.glob("open_clip_torch-*.whl"))
        with zipfile.ZipFile(wheels[-1]) as wheel:
            data, source = wheel.read(CLIP_VOCAB_MEMBER), f"{wheels[-1]}:{CLIP_VOCAB_MEMBER}"
    else:
        data, source = Path(local).read_bytes(), str(local)
    digest = hashlib.sha256(data).hexdigest()
    if digest != CLIP_VOCAB_SHA256:
        raise ValueError(f"{source}: SHA-256 {digest} is not CLIP's bpe_simple_vocab_16e6.txt.gz ({CLIP_VOCAB_SHA256})")
    return data


def write_clip_tokenizer(vocab_gz: bytes, out: Path) -> None:
    """``vocab.json`` + ``merges.txt`` of CLIP's BPE (49,408 tokens, as openai/clip-vit-* ship them) and the
    tokenizer config, via ``CLIPTokenizer.save_pretrained``."""
    from transformers import CLIPTokenizer

    lines = gzip.decompress(vocab_gz).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                                  pad_token="<|endoftext|>", model_max_length=77)
        tokenizer.save_pretrained(out)


def synthetic_bpe(specials_first: list[str], specials_last: list[str], size: int = BPE_VOCAB_SIZE):
    """(vocab, merges) of a byte-level BPE of exactly ``size`` entries: ``specials_first``, the 256 byte symbols,
    two-symbol merges in a fixed order, ``specials_last`` (RoBERTa's and OPT's layout, with made-up merges)."""
    symbols = list(bytes_to_unicode().values())
    n_merges = size - len(specials_first) - len(symbols) - len(specials_last)
    merges = [(a, b) for a in symbols for b in symbols][:n_merges]
    vocab = specials_first + symbols + [a + b for a, b in merges] + specials_last
    return {t: i for i, t in enumerate(vocab)}, merges


def _bpe_files(vocab: dict, merges: list, folder: Path) -> tuple[str, str]:
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return str(folder / "vocab.json"), str(folder / "merges.txt")


# ---- models ----------------------------------------------------------------------------------------------------
def _seeded(seed: int, key: str) -> None:
    torch.manual_seed(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "little"))


def clip_image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224},
                              image_mean=CLIP_MEAN, image_std=CLIP_STD, resample=3, do_convert_rgb=True)


def write_clip(out: Path, kind: str, vocab_gz: bytes, seed: int = 0) -> Path:
    """openai/clip-vit-base-patch32 (``kind`` "B/32") or clip-vit-large-patch14 ("L/14"): model, tokenizer,
    image processor."""
    from transformers import CLIPConfig, CLIPModel

    size = CLIP_SIZES[kind]
    text = dict(size["text"], vocab_size=CLIP_VOCAB_SIZE, max_position_embeddings=77, hidden_act="quick_gelu",
                bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    vision = dict(size["vision"], hidden_act="quick_gelu")
    _seeded(seed, f"clip {kind}")
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=size["projection_dim"]))
    model.save_pretrained(out)
    write_clip_tokenizer(vocab_gz, out)
    clip_image_processor().save_pretrained(out)
    return out


def write_sd(out: Path, vocab_gz: bytes, seed: int = 0) -> Path:
    """A CompVis/stable-diffusion-v1-4 diffusers folder (no safety checker) with random weights."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    _seeded(seed, "sd unet")
    unet = UNet2DConditionModel.from_config(json.loads(UNET_SD14.read_text()))
    _seeded(seed, "sd vae")
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                        layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512,
                        scaling_factor=0.18215)
    _seeded(seed, "sd text")
    text = CLIPTextModel(CLIPTextConfig(**CLIP_SIZES["L/14"]["text"], vocab_size=CLIP_VOCAB_SIZE,
                                        max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                                        bos_token_id=0, eos_token_id=2, pad_token_id=1))  # as SD-1.4's config.json
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(vocab_gz, Path(tmp))
        tokenizer = CLIPTokenizer.from_pretrained(tmp)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=clip_image_processor(),
                                   requires_safety_checker=False)
    pipe.save_pretrained(out)
    # SD-1.4's scheduler_config.json says clip_sample: false; diffusers' PNDMScheduler has no such argument, so
    # it is written back the way the released file has it
    config_file = Path(out) / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps(dict(json.loads(config_file.read_text()), clip_sample=False), indent=2) + "\n")
    return out


def write_clap(out: Path, seed: int = 0) -> Path:
    """laion/clap-htsat-unfused: ``ClapModel`` (HTSAT-tiny audio tower, RoBERTa-base text tower, 512-d
    projections) and ``ClapProcessor`` (48 kHz, 64 mels, hop 480, 10 s, repeat-padded)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    _seeded(seed, "clap")
    text = dict(vocab_size=BPE_VOCAB_SIZE, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                projection_dim=512)
    audio = dict(enable_fusion=False, spec_size=256, num_mel_bins=64, window_size=8, depths=[2, 2, 6, 2],
                 num_attention_heads=[4, 8, 16, 32], patch_embeds_hidden_size=96, hidden_size=768, projection_dim=512)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=512))
    model.save_pretrained(out)
    features = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, hop_length=480, fft_window_size=1024,
                                    max_length_s=10, frequency_min=50, frequency_max=14000,
                                    truncation="rand_trunc", padding="repeatpad")
    vocab, merges = synthetic_bpe(["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"])
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = RobertaTokenizer(*_bpe_files(vocab, merges, Path(tmp)), model_max_length=512)
    ClapProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    return out


def write_blip2(out: Path, seed: int = 0) -> Path:
    """Salesforce/blip2-opt-2.7b in bf16 (fp32 would need 15 GB to load): EVA ViT-g/14 (39 layers, 1408 wide, MLP
    6144), the 12-layer Q-Former with 32 queries, OPT-2.7b (32 layers, 2560 wide, 50,272 rows), ``Blip2Processor``
    (224 px, OPT's tokenizer layout with the ``<image>`` token)."""
    from transformers import (AddedToken, Blip2Config, Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor, GPT2Tokenizer, OPTConfig)

    vocab, merges = synthetic_bpe(["<s>", "<pad>", "</s>", "<unk>"], [])
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = GPT2Tokenizer(*_bpe_files(vocab, merges, Path(tmp)), bos_token="</s>", eos_token="</s>",
                                  unk_token="</s>", pad_token="<pad>", add_bos_token=True)
    tokenizer.add_tokens([AddedToken("<image>", normalized=False, special=True)], special_tokens=True)
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    text = OPTConfig(vocab_size=OPT_LM_ROWS, hidden_size=2560, word_embed_proj_dim=2560, ffn_dim=10240,
                     num_hidden_layers=32, num_attention_heads=32, max_position_embeddings=2048,
                     bos_token_id=2, eos_token_id=50118, pad_token_id=1, torch_dtype="float16")
    config = Blip2Config(
        vision_config=dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                           image_size=224, patch_size=14, qkv_bias=True, initializer_range=0.02),
        qformer_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            cross_attention_frequency=2, encoder_hidden_size=1408, vocab_size=30523),
        text_config=text.to_dict(), num_query_tokens=32, image_token_index=image_token)
    _seeded(seed, "blip2")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # build in bf16: 7.5 GB instead of 15
    try:
        model = Blip2ForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = 50118  # "\n", as the released generation config
    model.save_pretrained(out, max_shard_size="2GB")
    processor = Blip2Processor(BlipImageProcessor(size={"height": 224, "width": 224}, image_mean=CLIP_MEAN,
                                                  image_std=CLIP_STD, do_convert_rgb=True, resample=3),
                               tokenizer, num_query_tokens=32)
    processor.save_pretrained(out)
    return out


def write_wav2clip(path: Path, seed: int = 0) -> Path:
    from sonic.models.wav2clip import Wav2Clip, save_wav2clip

    _seeded(seed, "wav2clip")
    save_wav2clip(Wav2Clip(), path)
    return path


def write_fid_inception(path: Path, seed: int = 0) -> Path:
    """``pt_inception-2015-12-05``'s layout: the flat state dict of the TF-ported Inception-v3 (1008 classes)."""
    from sonic.metrics.inception import FidInceptionV3

    _seeded(seed, "fid inception")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(FidInceptionV3().random_init_().state_dict(), path)
    return path


def write_msclap(path: Path, seed: int = 0) -> Path:
    from sonic.models.msclap import MsClapAudio, MsClapConfig, save_checkpoint

    _seeded(seed, "msclap")
    return save_checkpoint(path, MsClapAudio(MsClapConfig()))


def write_release(projector: Path, adapters: Path, seed: int = 0, dataset: str = "") -> None:
    """A released-layout ``audio_projector_<dataset>.pth`` (K 77, 1024 -> 768) and ``<dataset>.pt`` (the mid block
    and the nine decoder attentions of SD-1.4's UNet)."""
    from diffusers import UNet2DConditionModel

    from sonic.models.projector import ProjectorConfig, ReleaseProjector
    from sonic.models.release import RELEASE_ATTN_DIM, RELEASE_HEADS, released_adapter_state

    _seeded(seed, f"release projector {dataset}")
    module = ReleaseProjector(ProjectorConfig(audio_dim=1024, num_tokens=77, token_dim=768, num_heads=RELEASE_HEADS,
                                              attn_dim=RELEASE_ATTN_DIM, architecture="release"))
    for p in (projector, adapters):
        p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), projector)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads(UNET_SD14.read_text()))
    generator = torch.Generator().manual_seed(seed)
    torch.save(released_adapter_state(unet, generator), adapters)


WRITERS = ("sd", "clap", "blip2", "clip_ais", "clip_eval", "wav2clip", "fid_features", "msclap_2022", "release")


def write_all(cfg, only: list[str] | None = None, cache: Path | None = None, clip_vocab: str | None = None) -> dict:
    """Write every model ``cfg.models`` names (or the ``only`` ones); returns {key: location(s)}."""
    models = cfg.models
    unknown = sorted(set(only or []) - set(WRITERS))
    if unknown:
        raise ValueError(f"sonic rehearse models: unknown model(s) {unknown}; choose from {list(WRITERS)}")
    todo = [k for k in (only or WRITERS) if k == "release" and models.release or k != "release" and getattr(models, k)]
    vocab = None
    if {"sd", "clip_ais", "clip_eval"} & set(todo):
        vocab = clip_vocab_gz(cache or Path(tempfile.gettempdir()) / "sonic-open-clip", clip_vocab)
    seed, written = cfg.seed, {}
    for key in todo:
        log.info("writing %s (random weights, paper size)", key)
        if key == "release":
            for dataset, files in models.release.items():
                write_release(Path(files["projector"]), Path(files["adapters"]), seed, dataset)
            written[key] = dict(models.release)
            continue
        out = Path(getattr(models, key))
        {
            "sd": lambda: write_sd(out, vocab, seed),
            "clip_ais": lambda: write_clip(out, "B/32", vocab, seed),
            "clip_eval": lambda: write_clip(out, "L/14", vocab, seed),
            "clap": lambda: write_clap(out, seed),
            "blip2": lambda: write_blip2(out, seed),
            "wav2clip": lambda: write_wav2clip(out, seed),
            "fid_features": lambda: write_fid_inception(out, seed),
            "msclap_2022": lambda: write_msclap(out, seed),
        }[key]()
        written[key] = str(out)
    return written
