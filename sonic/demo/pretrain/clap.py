"""Miniature LAION CLAP for the demo profile (docs/paper-profile.md, §7): a small transformers
``ClapModel`` (HTSAT audio tower, RoBERTa text tower with its own byte-level BPE tokenizer) trained contrastively on the
synthetic world's (audio, caption) pairs and saved as a ``save_pretrained`` folder that the paper profile's loaders read
unchanged.

The log-mel features come from the saved ``ClapFeatureExtractor`` itself (computed once; it is slow), so training
and inference see the same front end. Augmentation acts on those features: a gain jitter (a constant in dB) and a
circular time shift. Gain jitter stays small because loudness carries meaning here (docs/data.md: loud =
bright).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sonic.audio import load_audio
from sonic.demo.pretrain.captions import class_phrase
from sonic.demo.pretrain.data import Pair, load_pairs, warmup_cosine
from sonic.settings import ClapRecipe, for_run
from sonic.training.loop import adamw

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's ids 0..4


# ----------------------------------------------------------------------------------------------- construction
def train_tokenizer(texts: Sequence[str], recipe: ClapRecipe):
    """A byte-level BPE (RoBERTa's scheme and special tokens) learnt on ``texts``, as a ``RobertaTokenizer``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sorted(set(texts)), vocab_size=recipe.vocab_size, min_frequency=1,
                            special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        return RobertaTokenizer(vocab=f"{tmp}/vocab.json", merges=f"{tmp}/merges.txt",
                                model_max_length=recipe.max_text_tokens)


def build_feature_extractor(recipe: ClapRecipe):
    """Deterministic for clips up to ``max_length_s``: shorter ones are repeat-padded, none is cropped at random
    (:func:`log_mels` cuts longer ones to their first ``max_length_s`` before calling it)."""
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(feature_size=recipe.num_mel_bins, sampling_rate=recipe.sample_rate,
                                hop_length=recipe.hop_length, fft_window_size=recipe.fft_window_size,
                                max_length_s=recipe.max_length_s,
                                truncation="rand_trunc", padding="repeatpad")


def build_model(recipe: ClapRecipe, vocab_size: int):
    from transformers import ClapConfig, ClapModel

    width = recipe.patch_dim * 2 ** (len(recipe.depths) - 1)  # HTSAT's output width = audio hidden_size
    audio = dict(depths=list(recipe.depths), num_attention_heads=list(recipe.audio_heads),
                 patch_embeds_hidden_size=recipe.patch_dim, hidden_size=width, projection_dim=recipe.projection_dim,
                 spec_size=recipe.spec_size, num_mel_bins=recipe.num_mel_bins, window_size=recipe.window_size,
                 patch_size=recipe.patch_size, patch_stride=recipe.patch_size, enable_fusion=False,
                 hidden_dropout_prob=recipe.audio_dropout, drop_path_rate=0.0)
    text = dict(vocab_size=vocab_size, hidden_size=recipe.text_hidden, num_hidden_layers=recipe.text_layers,
                num_attention_heads=recipe.text_heads, intermediate_size=recipe.text_ffn,
                max_position_embeddings=recipe.max_text_tokens + 2, projection_dim=recipe.projection_dim,
                hidden_dropout_prob=recipe.text_dropout, attention_probs_dropout_prob=recipe.text_dropout)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=recipe.projection_dim))
    model.audio_model.audio_encoder.batch_norm.requires_grad_(recipe.learn_input_norm)
    return model


def log_mels(feature_extractor, audio_paths: Sequence[str]) -> torch.Tensor:
    """(N, 1, frames, mels) float32 inputs of the audio tower, each clip cut to its first ``max_length_s``."""
    sr, limit = feature_extractor.sampling_rate, feature_extractor.nb_max_samples
    feats = [feature_extractor(load_audio(p, sr)[:limit], sampling_rate=sr, return_tensors="np")["input_features"]
             for p in audio_paths]
    return torch.from_numpy(np.concatenate(feats)).float()


# ----------------------------------------------------------------------------------------------- training
def contrastive_loss(model, audio_emb: torch.Tensor, text_emb: torch.Tensor, text_of: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over B clips and U distinct texts; clip i's positive is text ``text_of[i]``.

    Texts repeat within a batch (clips of a class share captions), so the batch's texts are deduplicated: the
    audio->text side has one positive, the text->audio side spreads its target over all clips of that text.
    """
    logits_audio = audio_emb @ text_emb.T * model.logit_scale_a.exp()  # (B, U)
    logits_text = text_emb @ audio_emb.T * model.logit_scale_t.exp()  # (U, B)
    target = F.one_hot(text_of, text_emb.shape[0]).T.float()  # (U, B)
    target = target / target.sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits_audio, text_of) + F.cross_entropy(logits_text, target))


def augment(feats: torch.Tensor, gen: torch.Generator, gain_db: float) -> torch.Tensor:
    """Gain jitter (uniform +-gain_db, a constant on the dB log-mel) and a circular time shift per clip."""
    n, _, frames, _ = feats.shape
    gain = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * gain_db
    shifts = torch.randint(0, frames, (n,), generator=gen).tolist()
    rolled = torch.stack([torch.roll(f, s, dims=1) for f, s in zip(feats, shifts)])  # (N, 1, frames, mels)
    return rolled + gain


def _batch_texts(pairs: Sequence[Pair], label_batch: bool, gen: torch.Generator) -> tuple[list[str], torch.Tensor]:
    """Distinct texts of a batch and each clip's index into them: captions, or for label batches the raw label
    or its class phrase (drawn per label)."""
    if label_batch:
        keys = [p.label for p in pairs]
        distinct = sorted(set(keys))
        raw = torch.rand(len(distinct), generator=gen) < 0.5
        texts = [k if r else class_phrase(k) for k, r in zip(distinct, raw.tolist())]
    else:
        keys = [p.caption for p in pairs]
        distinct = texts = sorted(set(keys))
    index = {k: i for i, k in enumerate(distinct)}
    return texts, torch.tensor([index[k] for k in keys])


def train(model, tokenizer, feats: torch.Tensor, pairs: Sequence[Pair], recipe: ClapRecipe, seed: int) -> list[float]:
    """AdamW with warm-up and cosine decay; batches drawn without replacement, epoch after epoch. Returns losses."""
    gen = torch.Generator().manual_seed(seed)
    opt = adamw(model, recipe.lr, recipe.weight_decay, decay_all=True)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine(step, recipe.warmup_steps, recipe.steps))
    batch, order, losses = min(recipe.batch_size, len(pairs)), torch.empty(0, dtype=torch.long), []
    model.train()
    for step in range(recipe.steps):
        if len(order) < batch:
            order = torch.cat([order, torch.randperm(len(pairs), generator=gen)])
        idx, order = order[:batch], order[batch:]
        label_batch = recipe.label_batch_every > 0 and step % recipe.label_batch_every == recipe.label_batch_every - 1
        texts, text_of = _batch_texts([pairs[i] for i in idx.tolist()], label_batch, gen)
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        audio = augment(feats[idx], gen, recipe.gain_jitter_db)
        audio_emb = model.get_audio_features(input_features=audio).pooler_output  # (B, projection_dim), normalised
        text_emb = model.get_text_features(**tokens).pooler_output
        loss = contrastive_loss(model, audio_emb, text_emb, text_of)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for scale in (model.logit_scale_a, model.logit_scale_t):
                scale.clamp_(max=math.log(recipe.max_logit_scale))
        losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def embed_audio(model, feats: torch.Tensor, batch: int = 64) -> torch.Tensor:
    model.eval()
    return torch.cat([model.get_audio_features(input_features=f).pooler_output for f in feats.split(batch)])


@torch.no_grad()
def embed_texts(model, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    model.eval()
    tokens = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt")
    return model.get_text_features(**tokens).pooler_output


def evaluate(model, tokenizer, feats: torch.Tensor, pairs: Sequence[Pair], labels: dict[str, list[str]]) -> dict:
    """Audio->caption retrieval among the distinct captions of ``pairs`` (exact caption, and class level: the top
    caption names the clip's label) and audio->label zero-shot accuracy per dataset against ``class_phrase``."""
    if not pairs:
        return {"n": 0}
    audio = embed_audio(model, feats)
    captions = sorted({p.caption for p in pairs})
    label_of = {p.caption: p.label for p in pairs}
    top = (audio @ embed_texts(model, tokenizer, captions).T).argmax(dim=1).tolist()
    exact = np.mean([captions[t] == p.caption for t, p in zip(top, pairs)])
    cls = np.mean([label_of[captions[t]] == p.label for t, p in zip(top, pairs)])
    n_same_label = {p.label: sum(label_of[c] == p.label for c in captions) for p in pairs}
    out = {
        "n": len(pairs),
        "n_captions": len(captions),
        "retrieval_top1": float(exact),
        "retrieval_class_top1": float(cls),
        "chance_retrieval_top1": 1.0 / len(captions),
        "chance_retrieval_class_top1": float(np.mean([n_same_label[p.label] / len(captions) for p in pairs])),
        "zero_shot": {},
        "chance_zero_shot": {},
    }
    for dataset, names in sorted(labels.items()):
        rows = [i for i, p in enumerate(pairs) if p.dataset == dataset]
        if not rows:
            continue
        text = embed_texts(model, tokenizer, [class_phrase(n) for n in names])
        pred = (audio[rows] @ text.T).argmax(dim=1).tolist()
        out["zero_shot"][dataset] = float(np.mean([names[k] == pairs[i].label for k, i in zip(pred, rows)]))
        out["chance_zero_shot"][dataset] = 1.0 / len(names)
    return out


# ----------------------------------------------------------------------------------------------- entry point
def main(manifests: list[str], out_dir: str, seed: int = 0, steps: int | None = None,
         recipe: ClapRecipe | None = None, settings: ClapRecipe | None = None) -> dict:
    """Train the miniature CLAP on the train split of ``manifests``, save it to ``out_dir`` (model, feature extractor,
    tokenizer, ``quality.json``) and return the quality figures measured on the val split.

    Deterministic given ``seed`` and torch's thread count (which the caller sets; the global RNG is left as found).
    """
    from transformers import ClapProcessor

    wall0, cpu0 = time.perf_counter(), time.process_time()
    recipe = for_run(settings or recipe or ClapRecipe(), seed, steps)  # settings: pretrain.clap (no seed field)
    pairs = load_pairs(manifests, ("train", "val"))
    train_pairs = [p for p in pairs if p.split == "train"]
    val_pairs = [p for p in pairs if p.split == "val"]
    if not train_pairs:
        raise ValueError(f"no train clips in {list(manifests)}")
    labels = {d: sorted({p.label for p in pairs if p.dataset == d}) for d in sorted({p.dataset for p in pairs})}

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        words = [t for names in labels.values() for n in names for t in (n, class_phrase(n))]
        tokenizer = train_tokenizer([p.caption for p in train_pairs] + words, recipe)
        feature_extractor = build_feature_extractor(recipe)
        train_feats = log_mels(feature_extractor, [p.audio for p in train_pairs])
        val_feats = log_mels(feature_extractor, [p.audio for p in val_pairs])
        features_cpu = time.process_time() - cpu0
        model = build_model(recipe, len(tokenizer))
        losses = train(model, tokenizer, train_feats, train_pairs, recipe, seed)
    quality = evaluate(model, tokenizer, val_feats, val_pairs, labels)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    feature_extractor.save_pretrained(out)
    ClapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    quality.update({
        "split": "val",
        "seed": seed,
        "steps": recipe.steps,
        "batch_size": min(recipe.batch_size, len(train_pairs)),
        "lr": recipe.lr,
        "n_train": len(train_pairs),
        "parameters": {"audio": _count(model.audio_model, model.audio_projection),
                       "text": _count(model.text_model, model.text_projection), "total": _count(model)},
        "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-10:])) if losses else None,
        "threads": torch.get_num_threads(),
        "features_cpu_seconds": features_cpu,
        "cpu_seconds": time.process_time() - cpu0,
        "wall_seconds": time.perf_counter() - wall0,
        "recipe": asdict(recipe),
    })
    (out / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def _count(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())
