"""Miniature BLIP-2 captioner for the demo profile (docs/paper-profile.md, §7): a small transformers
``Blip2ForConditionalGeneration`` (ViT vision tower, Q-Former, OPT language model) with a ``Blip2Processor``
(``BlipImageProcessor`` + an OPT-format byte-level BPE tokenizer built here), trained to caption the synthetic
world's frames and saved as a ``save_pretrained`` folder that the paper profile's captioning code reads unchanged.

How it matches ``Salesforce/blip2-opt-2.7b`` (Li et al. 2023), so the same calls work on both:

* **Tokenizer.** OPT's layout: ``<s>``, ``<pad>``, ``</s>``, ``<unk>`` are ids 0..3; ``</s>`` is BOS, EOS and UNK,
  ``<pad>`` pads, and a BOS is prepended to every text. ``Blip2Processor`` adds the special ``<image>`` token (as it
  does for the real checkpoint), and the model config's ``image_token_index`` is that token's id.
* **Prompt format.** ``processor(images=...)`` returns only ``pixel_values``; ``generate`` then builds the prompt
  ``<image> x num_query_tokens, </s>`` and writes the projected Q-Former outputs over the ``<image>`` embeddings.
  Training uses exactly that prefix followed by the caption and ``</s>`` (LM loss on caption + EOS only), so greedy
  ``generate`` continues the sequence it was trained on and stops at ``</s>``.
* **Query tokens** are re-initialised N(0, 0.02) as in LAVIS: transformers' ``_init_weights`` zeroes them (fine for
  a checkpoint that overwrites them, but identical queries would stay identical when training from scratch).

Training: AdamW with linear warm-up and cosine decay, class-balanced batches (weights ``count(label) **
-balance_power``, so the one-or-two-clip Into-the-Wild tags are seen), and a mild random resized crop + horizontal
flip on the processor's own pixel tensors (no colour jitter: the captions name the brightness).

Quality (``quality.json``): on the validation split, the share of generated captions that name the clip's class
(:func:`named_class`), per dataset and overall, against chance (uniform over the dataset's classes) and the majority
class; the exact-caption and brightness-word rates; example captions.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sonic.data.features import caption_frames
from sonic.demo.pretrain.captions import BRIGHTNESS_WORDS, class_phrase
from sonic.demo.pretrain.data import Pair, balanced_weights, load_pairs, warmup_cosine
from sonic.settings import Blip2Settings, for_run
from sonic.training.loop import adamw

OPT_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # OPT's ids 0..3
BOS = EOS = UNK = "</s>"
PAD = "<pad>"
IMAGE_TOKEN = "<image>"


# ---- tokenizer and processor -------------------------------------------------------------------------------------
def build_tokenizer(texts: list[str], vocab_size: int = 512):
    """Train an OPT-format byte-level BPE on ``texts``; returns a ``GPT2Tokenizer`` (OPT's tokenizer class) with
    the special ``<image>`` token as its last id.

    Deterministic for a given set of texts (sorted and de-duplicated before training). Unseen words fall back to
    the 256 byte symbols, never to ``<unk>``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken, GPT2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=1, special_tokens=list(OPT_SPECIALS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(sorted(set(texts)), trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = GPT2Tokenizer(vocab=state["vocab"], merges=merges, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                              pad_token=PAD, add_bos_token=True, add_prefix_space=False)
    # The image placeholder, added exactly as Blip2Processor adds it (a no-op there once present).
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, normalized=False, special=True)], special_tokens=True)
    return tokenizer


def build_processor(tokenizer, settings: Blip2Settings):
    """``Blip2Processor`` of a ``BlipImageProcessor`` at ``image_size`` and ``tokenizer``."""
    from transformers import Blip2Processor, BlipImageProcessor

    n = settings.image_size
    images = BlipImageProcessor(size={"height": n, "width": n}, image_mean=list(settings.image_mean),
                                image_std=list(settings.image_std), do_convert_rgb=True)
    return Blip2Processor(images, tokenizer, num_query_tokens=settings.num_query_tokens)


def _save_vocab_files(tokenizer, out_dir: Path) -> None:
    """OPT's slow-tokenizer files (vocab.json + merges.txt) beside tokenizer.json, for readers that want them."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["merges"]]
    (out_dir / "vocab.json").write_text(json.dumps(state["vocab"], ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges), encoding="utf-8")


# ---- model -------------------------------------------------------------------------------------------------------
def blip2_config(settings: Blip2Settings, tokenizer):
    from transformers import Blip2Config, OPTConfig

    s = settings
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        raise ValueError(f"blip2_config: the tokenizer has no {IMAGE_TOKEN} token (build it with build_tokenizer)")
    vision = dict(
        hidden_size=s.vision_hidden, intermediate_size=s.mlp_ratio * s.vision_hidden,
        num_hidden_layers=s.vision_layers, num_attention_heads=s.vision_heads, image_size=s.image_size,
        patch_size=s.patch_size, initializer_range=0.02,  # the default 1e-10 only suits loading a checkpoint
    )
    qformer = dict(
        hidden_size=s.qformer_hidden, intermediate_size=s.mlp_ratio * s.qformer_hidden,
        num_hidden_layers=s.qformer_layers, num_attention_heads=s.qformer_heads, cross_attention_frequency=1,
        encoder_hidden_size=s.vision_hidden, vocab_size=len(tokenizer), max_position_embeddings=s.max_positions,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    text = OPTConfig(
        vocab_size=len(tokenizer), hidden_size=s.text_hidden, word_embed_proj_dim=s.text_hidden,
        ffn_dim=s.mlp_ratio * s.text_hidden, num_hidden_layers=s.text_layers, num_attention_heads=s.text_heads,
        max_position_embeddings=s.max_positions, dropout=0.0, attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return Blip2Config(
        vision_config=vision, qformer_config=qformer, text_config=text.to_dict(),
        num_query_tokens=s.num_query_tokens, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
    )


def build_model(settings: Blip2Settings, tokenizer):
    """A freshly initialised ``Blip2ForConditionalGeneration`` (seeded), with LAVIS' N(0, 0.02) query tokens."""
    from transformers import Blip2ForConditionalGeneration

    torch.manual_seed(settings.seed)
    model = Blip2ForConditionalGeneration(blip2_config(settings, tokenizer))
    with torch.no_grad():
        model.query_tokens.normal_(0.0, 0.02)
    # Greedy decoding, stop at </s> (what generate() falls back to when no arguments are given).
    gen = model.generation_config
    gen.do_sample, gen.num_beams = False, 1
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return model


def encode_captions(tokenizer, captions: list[str], num_query_tokens: int, image_token_id: int):
    """Training sequences ``<image> x Q, </s>, caption, </s>`` right-padded: ``(input_ids, attention_mask, labels)``.

    The prefix is what ``Blip2ForConditionalGeneration.generate`` builds for an image-only input; ``labels`` are
    -100 on the prefix and the padding, so the LM loss covers the caption tokens and the closing ``</s>``.
    """
    rows = [[image_token_id] * num_query_tokens + tokenizer(c).input_ids + [tokenizer.eos_token_id]
            for c in captions]
    n = max(len(r) for r in rows)
    ids = torch.full((len(rows), n), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    labels = torch.full((len(rows), n), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
        labels[i, num_query_tokens + 1:len(r)] = ids[i, num_query_tokens + 1:len(r)]
    return ids, mask, labels


def _augment(pixels: torch.Tensor, settings: Blip2Settings, gen: torch.Generator) -> torch.Tensor:
    """Random resized crop (square, ``crop_area`` of the image) + horizontal flip of (B, 3, H, W) pixels."""
    b = pixels.shape[0]
    lo, hi = settings.crop_area
    side = torch.sqrt(lo + (hi - lo) * torch.rand(b, generator=gen))  # crop side / image side
    tx = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)  # crop centre, normalised coordinates
    ty = (1 - side) * (2 * torch.rand(b, generator=gen) - 1)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = side * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = side, ty
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ---- evaluation --------------------------------------------------------------------------------------------------
def _contains(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive phrase match."""
    return re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text.lower()) is not None


def named_class(caption: str, labels: list[str]) -> str | None:
    """The class a caption names among ``labels``, or ``None`` when it names none or several.

    A label matches when the caption contains its :func:`class_phrase` or, failing that, all of its label words
    (``"forest+rain"`` -> forest, rain), each as whole words. A match whose words are a strict subset of another
    match's words is dropped, so "a hiking trail with snow and forest" names ``snow+forest``, not ``snow`` or
    ``hiking``; two matches that are not nested ("wood and metal") name nothing.
    """
    matched: dict[str, set[str]] = {}
    for label in labels:
        phrase, words = class_phrase(label), [w for w in re.split(r"[+\s]+", label) if w]
        if _contains(caption, phrase):
            matched[label] = set(phrase.lower().split())
        elif words and all(_contains(caption, w) for w in words):
            matched[label] = {w.lower() for w in words}
    named = [a for a, wa in matched.items() if not any(wa < wb for wb in matched.values())]
    return named[0] if len(named) == 1 else None


def label_sets(pairs: list[Pair]) -> dict[str, list[str]]:
    """Each dataset's label strings (sorted): the classes a caption can name."""
    sets: dict[str, set[str]] = {}
    for p in pairs:
        sets.setdefault(p.dataset, set()).add(p.label)
    return {d: sorted(v) for d, v in sorted(sets.items())}


def caption_quality(captions: list[str], pairs: list[Pair], labels: dict[str, list[str]],
                    train_pairs: list[Pair]) -> dict:
    """Right-class rate per dataset and overall, with chance and majority-class baselines and caption details."""
    hits: dict[str, list[bool]] = {}
    chance: dict[str, list[float]] = {}
    majority: dict[str, list[bool]] = {}
    exact, bright, errors = [], [], []
    adjectives = [w for _, w in BRIGHTNESS_WORDS]
    for p, c in zip(pairs, captions):
        named = named_class(c, labels[p.dataset])
        counts = Counter(q.label for q in train_pairs if q.dataset == p.dataset)
        top = counts.most_common(1)[0][0] if counts else None
        for key in (p.dataset, "overall"):
            hits.setdefault(key, []).append(named == p.label)
            chance.setdefault(key, []).append(1 / len(labels[p.dataset]))
            majority.setdefault(key, []).append(top == p.label)
        exact.append(c == p.caption)
        said = [w for w in adjectives if _contains(c, w)]
        bright.append(said == [w for w in adjectives if _contains(p.caption, w)])
        if named != p.label:
            errors.append(f"{p.clip_id}: {p.label} -> {named} ({c!r})")
    mean = lambda v: round(float(np.mean(v)), 4) if v else None  # noqa: E731
    return {
        "right_class": {k: mean(v) for k, v in hits.items()},
        "chance": {k: mean(v) for k, v in chance.items()},
        "majority_class": {k: mean(v) for k, v in majority.items()},
        "exact_caption": mean(exact),
        "brightness_word": mean(bright),
        "errors": errors,
    }


# ---- training ----------------------------------------------------------------------------------------------------
def train_blip2(train_pairs: list[Pair], val_pairs: list[Pair], out_dir: Path, settings: Blip2Settings) -> dict:
    """Train the miniature BLIP-2 captioner on ``train_pairs``, save model + processor to ``out_dir``, score it on
    ``val_pairs`` and write ``quality.json``; returns the quality figure.

    The tokenizer is built from the training captions. Everything is seeded by ``settings.seed``.
    """
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    s = settings
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not train_pairs:
        raise ValueError("train_blip2: no training pairs")
    tokenizer = build_tokenizer([p.caption for p in train_pairs], s.vocab_size)
    processor = build_processor(tokenizer, s)
    model = build_model(s, tokenizer)
    model.train()
    gen = torch.Generator().manual_seed(s.seed)

    # Precomputed once: the processor's own pixel tensors (N, 3, S, S) and the token sequences of the captions.
    images = []
    for p in train_pairs:
        with Image.open(p.frame) as im:
            images.append(im.convert("RGB"))
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    ids, mask, labels = encode_captions(tokenizer, [p.caption for p in train_pairs], s.num_query_tokens,
                                        model.config.image_token_index)
    weights = balanced_weights([p.label for p in train_pairs], s.balance_power)
    batch = min(s.batch_size, len(train_pairs))

    opt = adamw(model, s.lr, s.weight_decay, keep=("embed", "query_tokens"), betas=(0.9, 0.98))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, s.warmup_steps, s.steps))
    losses = []
    for _ in range(s.steps):
        idx = torch.multinomial(weights, batch, replacement=False, generator=gen)
        length = int(mask[idx].sum(1).max())  # (B, L) -> (B, longest in batch)
        out = model(pixel_values=_augment(pixels[idx], s, gen), input_ids=ids[idx, :length],
                    attention_mask=mask[idx, :length], labels=labels[idx, :length])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss.detach()))
    train_cpu, train_wall = time.process_time() - t_cpu, time.perf_counter() - t_wall

    model.eval()
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    _save_vocab_files(tokenizer, out_dir)

    classes = label_sets(train_pairs + val_pairs)
    val_captions = caption_frames(model, processor, [p.frame for p in val_pairs], progress=False)
    val = caption_quality(val_captions, val_pairs, classes, train_pairs)
    train_captions = caption_frames(model, processor, [p.frame for p in train_pairs], progress=False)
    train = caption_quality(train_captions, train_pairs, classes, train_pairs)
    examples = {}
    for p, c in zip(val_pairs, val_captions):
        examples.setdefault(p.dataset, [])
        if len(examples[p.dataset]) < 3:
            examples[p.dataset].append({"clip_id": p.clip_id, "label": p.label, "reference": p.caption,
                                        "generated": c})
    quality = {
        "right_class": val["right_class"],
        "chance": val["chance"],
        "majority_class": val["majority_class"],
        "exact_caption": val["exact_caption"],
        "brightness_word": val["brightness_word"],
        "train_right_class": train["right_class"],
        "train_exact_caption": train["exact_caption"],
        "examples": examples,
        "val_errors": val["errors"],
        "labels": classes,
        "n_train": len(train_pairs),
        "n_val": dict(sorted(Counter(p.dataset for p in val_pairs).items())),
        "steps": s.steps,
        "batch_size": batch,
        "lr": s.lr,
        "final_loss": round(float(np.mean(losses[-10:])), 4) if losses else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameters_by_part": {name: sum(p.numel() for p in getattr(model, name).parameters())
                               for name in ("vision_model", "qformer", "language_projection", "language_model")},
        "vocab_size": len(tokenizer),
        "threads": torch.get_num_threads(),
        "train_cpu_seconds": round(train_cpu, 2),
        "train_wall_seconds": round(train_wall, 2),
        "cpu_seconds": round(time.process_time() - t_cpu, 2),
        "wall_seconds": round(time.perf_counter() - t_wall, 2),
        "settings": asdict(s),
    }
    text = json.dumps(quality, indent=2)
    (out_dir / "quality.json").write_text(text + "\n")
    return json.loads(text)  # what the file holds (tuples as lists)


def main(manifests: list[str], out_dir: str, seed: int = 0, steps: int | None = None,
         settings: Blip2Settings | None = None) -> dict:
    """Train, save and score the miniature BLIP-2 on the train / val splits of ``manifests``; ``settings``: the
    recipe (``pretrain.blip2``), whose seed and steps (where given) ``seed`` and ``steps`` replace."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = for_run(settings or Blip2Settings(), seed, steps)
    train = load_pairs(manifests, ("train",))
    val = load_pairs(manifests, ("val",))
    return train_blip2(train, val, Path(out_dir), settings)
