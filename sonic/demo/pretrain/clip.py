"""Miniature CLIP for the demo profile (docs/pretrained-models.md): a byte-level BPE tokenizer and a small
``CLIPModel``.

Trained contrastively (Radford et al. 2021) on the synthetic world's (frame, text) pairs of all three datasets.
Its text tower is the Stable Diffusion text encoder of the demo profile (width 128 = the miniature UNet's
``cross_attention_dim``), its image tower the AIC / IIS model (FID has its own network,
:mod:`sonic.demo.pretrain.fid`). The output folder is a standard ``save_pretrained`` folder: ``CLIPModel``,
``CLIPTextModel``, ``CLIPVisionModel``, ``CLIPTokenizer`` and ``CLIPImageProcessor`` all load it with
``from_pretrained`` and no network.

Choices, each a :class:`ClipSettings` field or documented here:

* **Texts.** Each sample's text is its reference caption ("a bright photo of a drumstick hitting wood") or, with
  probability ``label_text_prob``, the raw label string ("wood", "forest+rain"), because the AIC metric
  classifies zero-shot against raw label strings with no prompt template.
* **Multi-positive contrastive loss.** Many samples of a batch share a class, so the one-hot InfoNCE target of
  CLIP would push apart matching pairs. Text ``j`` counts as a positive of image ``i`` when it is image ``i``'s
  caption or label string; each direction's target spreads evenly over the positives (soft-target cross-entropy),
  which reduces to CLIP's loss when every positive is the diagonal.
* **Sampling.** Batches are drawn without replacement with weights ``count(label) ** -balance_power``, so the
  Into-the-Wild tags (one or two training clips each) are not drowned by the nine Landscape classes.
* **Augmentation.** A random resized crop (area ``crop_area``, aspect ``crop_aspect``) and a horizontal flip,
  one affine ``grid_sample`` per batch on images precomputed at the model's resolution. No colour jitter:
  brightness is part of the captions.
* **Texts are padded to the longest text** during training, not to 77: the causal mask makes the pooled output
  (at the first ``<|endoftext|>``) independent of what follows it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sonic.demo.pretrain.data import Pair, balanced_weights, load_pairs, warmup_cosine
from sonic.images import load_image
from sonic.settings import ClipSettings, for_run
from sonic.training.loop import adamw

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's pre-tokenisation (transformers.models.clip.tokenization_clip): specials, contractions, letter runs,
# single digits, punctuation runs.
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
MAX_LENGTH = 77


# ---- tokenizer --------------------------------------------------------------------------------------------------
def _bytes_to_unicode() -> dict[int, str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def build_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 1000):
    """Train a CLIP-format byte-level BPE on ``texts`` and save it to ``out_dir``; returns the ``CLIPTokenizer``.

    The vocabulary is laid out as OpenAI's: the 256 byte symbols, the same with the ``</w>`` end-of-word suffix,
    one entry per merge in merge order, then ``<|startoftext|>`` and ``<|endoftext|>`` (the two highest ids).
    Merges come from ``tokenizers``' ``BpeTrainer`` (deterministic for a given text list) and are cut so that the
    vocabulary has at most ``vocab_size`` entries; a small corpus may need fewer.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    byte_symbols = list(_bytes_to_unicode().values())
    base = byte_symbols + [b + "</w>" for b in byte_symbols]
    if vocab_size < len(base) + 2:
        raise ValueError(f"vocab_size must be >= {len(base) + 2}, got {vocab_size}")

    bpe = Tokenizer(models.BPE(unk_token=EOS, continuing_subword_prefix="", end_of_word_suffix="</w>",
                               fuse_unk=False))
    # Same normalisation and pre-tokenisation as transformers' CLIPTokenizer, so the merges apply unchanged.
    bpe.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=2 * vocab_size, min_frequency=1, special_tokens=[], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), end_of_word_suffix="</w>",
    )
    bpe.train_from_iterator(sorted(set(texts)), trainer)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in json.loads(bpe.to_str())["model"]["merges"]]

    vocab: dict[str, int] = {s: i for i, s in enumerate(base)}
    kept = []
    for a, b in merges:
        if len(vocab) >= vocab_size - 2:
            break
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        kept.append((a, b))
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = CLIPTokenizer(vocab=vocab, merges=kept, model_max_length=MAX_LENGTH)
    tok.save_pretrained(out_dir)
    # The slow-tokenizer files too, in OpenAI's format, for readers that want vocab.json + merges.txt.
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in kept), encoding="utf-8"
    )
    return CLIPTokenizer.from_pretrained(out_dir)


# ---- model -------------------------------------------------------------------------------------------------------
def clip_config(settings: ClipSettings, tokenizer):
    from transformers import CLIPConfig

    s = settings
    text = dict(
        vocab_size=len(tokenizer), hidden_size=s.text_hidden, intermediate_size=s.mlp_ratio * s.text_hidden,
        num_hidden_layers=s.text_layers, num_attention_heads=s.text_heads, max_position_embeddings=MAX_LENGTH,
        projection_dim=s.projection_dim, hidden_act="quick_gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=s.vision_hidden, intermediate_size=s.mlp_ratio * s.vision_hidden,
        num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads, image_size=s.image_size,
        patch_size=s.patch_size, projection_dim=s.projection_dim, hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=s.projection_dim)


def image_processor(settings: ClipSettings):
    from transformers import CLIPImageProcessor

    n = settings.image_size
    return CLIPImageProcessor(
        size={"shortest_edge": n}, crop_size={"height": n, "width": n},
        image_mean=list(settings.image_mean), image_std=list(settings.image_std),
    )


def _augment(images: torch.Tensor, settings: ClipSettings, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop + horizontal flip of (B, 3, H, W) images with one affine ``grid_sample``."""
    b = images.shape[0]
    lo, hi = settings.crop_area
    area = lo + (hi - lo) * torch.rand(b, generator=gen)
    log_lo, log_hi = math.log(settings.crop_aspect[0]), math.log(settings.crop_aspect[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(b, generator=gen))
    sx = torch.sqrt(area * aspect).clamp(max=1.0)  # crop width / image width
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (1 - sx) * (2 * torch.rand(b, generator=gen) - 1)  # crop centre, normalised coordinates
    ty = (1 - sy) * (2 * torch.rand(b, generator=gen) - 1)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _multi_positive_loss(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Symmetric soft-target cross-entropy; ``logits[i, j]`` image i vs text j, ``positive`` a (B, B) bool mask."""
    pos = positive.float()
    i2t = -(pos / pos.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    t2i = -(pos.T / pos.T.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1).mean()
    return 0.5 * (i2t + t2i)


def _normalise(images: torch.Tensor, settings: ClipSettings) -> torch.Tensor:
    mean = torch.tensor(settings.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(settings.image_std).view(1, 3, 1, 1)
    return (images - mean) / std


# ---- evaluation -------------------------------------------------------------------------------------------------
def label_sets(pairs: list[Pair]) -> dict[str, list[str]]:
    """Each dataset's label strings (sorted), the classes of its zero-shot task."""
    sets: dict[str, set[str]] = {}
    for p in pairs:
        sets.setdefault(p.dataset, set()).add(p.label)
    return {d: sorted(v) for d, v in sorted(sets.items())}


def _features(out) -> torch.Tensor:
    """``get_*_features`` returns a tensor in transformers 4 and an output object with ``pooler_output`` in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.no_grad()
def zero_shot(model, tokenizer, processor, pairs: list[Pair],
              labels: dict[str, list[str]]) -> tuple[dict[str, float], list[str]]:
    """Accuracy of image vs raw label string (argmax over the image's dataset's labels), per dataset and overall,
    and the misclassified clips as ``"clip_id: label -> predicted"``.

    Images go through the saved ``CLIPImageProcessor`` and labels through the tokenizer, as downstream code does.
    """
    model.eval()
    acc, errors, correct_all = {}, [], 0
    for dataset, names in labels.items():
        group = [p for p in pairs if p.dataset == dataset]
        if not group:
            continue
        text = tokenizer(names, padding=True, return_tensors="pt")
        t = F.normalize(_features(model.get_text_features(**text)), dim=-1)
        images = []
        for p in group:
            with Image.open(p.frame) as im:
                images.append(im.convert("RGB"))
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        v = F.normalize(_features(model.get_image_features(pixel_values=pixels)), dim=-1)
        pred = (v @ t.T).argmax(1)
        truth = torch.tensor([names.index(p.label) for p in group])
        correct = int((pred == truth).sum())
        acc[dataset] = correct / len(group)
        correct_all += correct
        errors += [f"{p.clip_id}: {p.label} -> {names[k]}" for p, k in zip(group, pred.tolist()) if p.label != names[k]]
    acc["overall"] = correct_all / max(1, sum(p.dataset in labels for p in pairs))
    return acc, errors


# ---- training ---------------------------------------------------------------------------------------------------
def train_clip(train_pairs: list[Pair], val_pairs: list[Pair], out_dir: Path, settings: ClipSettings,
               tokenizer=None) -> dict:
    """Train the miniature CLIP on ``train_pairs``, save it to ``out_dir`` and write ``quality.json``.

    ``tokenizer``: a ``CLIPTokenizer`` to use and save; when ``None`` one is built with :func:`build_tokenizer`
    from the training captions and the labels of both splits (label strings are the zero-shot classes, so they
    must tokenise into known words; val captions are never seen).
    Returns the quality figure (also in ``out_dir/quality.json``).
    """
    from transformers import CLIPModel

    t_wall, t_cpu = time.perf_counter(), time.process_time()
    s = settings
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train_pairs:
        raise ValueError("train_clip: no training pairs")
    if tokenizer is None:
        texts = [p.caption for p in train_pairs] + [p.label for p in train_pairs + val_pairs]
        tokenizer = build_tokenizer(texts, out_dir, s.vocab_size)
    else:
        tokenizer.save_pretrained(out_dir)
    processor = image_processor(s)

    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    model = CLIPModel(clip_config(s, tokenizer))
    model.train()

    # Everything precomputed once: images (N, 3, S, S) in [0, 1], texts as ids padded to the longest.
    images = torch.from_numpy(np.stack([load_image(p.frame, s.image_size) for p in train_pairs])).permute(0, 3, 1, 2)
    strings = sorted({p.caption for p in train_pairs} | {p.label for p in train_pairs})
    sid = {t: i for i, t in enumerate(strings)}
    enc = tokenizer(strings, padding=True, return_tensors="pt")
    caption_id = torch.tensor([sid[p.caption] for p in train_pairs])
    label_id = torch.tensor([sid[p.label] for p in train_pairs])
    weights = balanced_weights([p.label for p in train_pairs], s.balance_power)
    batch = min(s.batch_size, len(train_pairs))

    opt = adamw(model, s.lr, s.weight_decay, keep=("embed",), betas=(0.9, 0.98), eps=1e-6)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, s.warmup_steps, s.steps))
    losses = []
    for step in range(s.steps):
        idx = torch.multinomial(weights, batch, replacement=False, generator=gen)
        use_label = torch.rand(batch, generator=gen) < s.label_text_prob
        text_id = torch.where(use_label, label_id[idx], caption_id[idx])
        positive = (text_id[None, :] == caption_id[idx][:, None]) | (text_id[None, :] == label_id[idx][:, None])
        pixels = _normalise(_augment(images[idx], s, gen), s)
        ids, mask = enc["input_ids"][text_id], enc["attention_mask"][text_id]
        keep = int(mask.sum(1).max())  # (B, L) -> (B, longest in batch)
        out = model(input_ids=ids[:, :keep], attention_mask=mask[:, :keep], pixel_values=pixels)
        loss = _multi_positive_loss(out.logits_per_image, positive)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
    train_cpu, train_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall

    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    labels = label_sets(train_pairs + val_pairs)
    val_acc, val_errors = zero_shot(model, tokenizer, processor, val_pairs, labels)
    train_acc, _ = zero_shot(model, tokenizer, processor, train_pairs, labels)
    quality = {
        "zero_shot_accuracy": val_acc,
        "train_zero_shot_accuracy": train_acc,
        "val_errors": val_errors,
        "chance": {d: 1 / len(v) for d, v in labels.items()},
        "labels": labels,
        "n_train": len(train_pairs),
        "n_val": dict(sorted(Counter(p.dataset for p in val_pairs).items())),
        "steps": s.steps,
        "batch_size": batch,
        "lr": s.lr,
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "threads": torch.get_num_threads(),
        "train_cpu_seconds": round(train_cpu, 2),
        "train_wall_seconds": round(train_wall, 2),
        "cpu_seconds": round(time.process_time() - t_cpu, 2),
        "wall_seconds": round(time.perf_counter() - t_wall, 2),
        "settings": asdict(s),
    }
    (out_dir / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def main(manifests: list[str], out_dir: str, seed: int = 0, steps: int | None = None,
         threads: int | None = None, settings: ClipSettings | None = None) -> dict:
    """Build the tokenizer (train captions + all labels) and train, save and score the miniature CLIP.

    ``threads``: torch's CPU thread count (the rule's ``threads:``); ``None`` leaves torch's setting alone.
    ``settings``: the recipe (``pretrain.clip``); ``seed`` and ``steps`` (where given) replace its own.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if threads is not None:
        torch.set_num_threads(threads)
    settings = for_run(settings or ClipSettings(), seed, steps)
    train = load_pairs(manifests, ("train",))
    val = load_pairs(manifests, ("val",))
    return train_clip(train, val, Path(out_dir), settings)  # builds the tokenizer: train captions + all labels
