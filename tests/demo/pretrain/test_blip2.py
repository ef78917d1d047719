"""Miniature BLIP-2 (docs/pretrained-models.md): OPT-format tokenizer, a save_pretrained folder the BLIP-2
classes load, the image-only captioning path of the real checkpoint, determinism and the quality figure."""

import json
from dataclasses import replace

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, Blip2ForConditionalGeneration, Blip2Processor, GPT2Tokenizer

from sonic.models import registry
from sonic.config import from_dict
from sonic.demo.pretrain.blip2 import (
    Blip2Settings, build_processor, build_tokenizer, caption_frames, encode_captions, named_class, train_blip2,
)
from tests.tiny import square_pairs, tiny_config_dict

TINY = Blip2Settings(
    steps=3, batch_size=6, warmup_steps=1, image_size=16, patch_size=8, vision_hidden=32, vision_layers=1,
    vision_heads=2, qformer_hidden=32, qformer_layers=1, qformer_heads=2, num_query_tokens=4, text_hidden=32,
    text_layers=1, text_heads=2, mlp_ratio=2, max_positions=64,
)
TEXTS = ["a bright photo of a drumstick hitting wood", "a dim photo of a landscape with fire crackling",
         "a dark photo of a hiking trail with forest and rain"]


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("blip2")
    train, val = square_pairs(root / "frames"), square_pairs(root / "frames", 1, "val", seed=1)
    runs = [train_blip2(train, val, root / f"run{k}", TINY) for k in range(2)]
    return root, train, val, runs


def test_tokenizer_round_trip(tmp_path):
    tok = build_tokenizer(TEXTS)
    build_processor(tok, TINY).save_pretrained(tmp_path / "a")
    for loaded in (GPT2Tokenizer.from_pretrained(tmp_path / "a"), AutoTokenizer.from_pretrained(tmp_path / "a")):
        assert loaded.get_vocab() == tok.get_vocab()
        # OPT's layout: <s> <pad> </s> <unk> are ids 0..3; </s> is BOS and EOS; a BOS starts every text.
        assert [loaded.convert_ids_to_tokens(i) for i in range(4)] == ["<s>", "<pad>", "</s>", "<unk>"]
        assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (2, 2, 1)
        for text in TEXTS:
            ids = loaded(text).input_ids
            assert ids[0] == loaded.bos_token_id and loaded.bos_token_id not in ids[1:]
            assert loaded.decode(ids, skip_special_tokens=True) == text
        assert loaded.tokenize("a dim photo")[1] == "Ġdim"  # byte-level BPE, whole caption words are single tokens
        # <image> is the last id and special, so batch_decode(..., skip_special_tokens=True) drops the prompt.
        image_id = loaded.convert_tokens_to_ids("<image>")
        assert image_id == len(loaded) - 1
        assert loaded.decode([image_id, image_id, 2] + loaded("wood", add_special_tokens=False).input_ids,
                              skip_special_tokens=True) == "wood"
        assert loaded.unk_token_id not in loaded("zebra!", add_special_tokens=False).input_ids  # byte fallback
    # deterministic: the same texts in another order give the same vocabulary and merges
    again = build_tokenizer(list(reversed(TEXTS)) + TEXTS[:1])
    assert again.backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_training_sequences_match_the_generation_prompt():
    tok = build_tokenizer(TEXTS)
    image_id = tok.convert_tokens_to_ids("<image>")
    ids, mask, labels = encode_captions(tok, TEXTS[:2], num_query_tokens=4, image_token_id=image_id)
    for i, text in enumerate(TEXTS[:2]):
        n = int(mask[i].sum())
        caption = tok(text, add_special_tokens=False).input_ids
        # <image> x Q, </s> (what generate() builds for an image-only input), caption, </s>; then padding
        assert ids[i, :n].tolist() == [image_id] * 4 + [2] + caption + [2]
        assert (ids[i, n:] == tok.pad_token_id).all() and (mask[i, n:] == 0).all()
        # the LM loss covers the caption and the closing </s> only
        assert labels[i, :5].eq(-100).all() and labels[i, n:].eq(-100).all()
        assert labels[i, 5:n].tolist() == caption + [2]


@pytest.mark.parametrize(("caption", "labels", "named"), [
    ("a dim photo of a drumstick hitting wood", ["metal", "wood"], "wood"),
    ("a photo of wood", ["metal", "wood"], "wood"),  # label words, for captions not in the reference format
    ("a dark photo of a hiking trail with snow and forest", ["hiking", "snow", "snow+forest", "forest"],
     "snow+forest"),
    ("a dark photo of a hiking trail", ["hiking", "snow", "snow+forest"], "hiking"),
    ("a landscape with raining", ["rain", "raining"], "raining"),  # whole words: rain is not raining
    ("a photo of wood and metal", ["metal", "wood"], None),  # ambiguous
    ("a bright photo", ["metal", "wood"], None),
])
def test_named_class(caption, labels, named):
    assert named_class(caption, labels) == named


def test_saved_folder_loads_and_captions(trained):
    root, train, val, _ = trained
    folder = root / "run0"
    model = Blip2ForConditionalGeneration.from_pretrained(folder)
    processor = Blip2Processor.from_pretrained(folder)
    assert processor.num_query_tokens == model.config.num_query_tokens == TINY.num_query_tokens
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index
    assert model.config.text_config.model_type == "opt"
    assert processor.image_processor.size == {"height": 16, "width": 16}
    assert (folder / "vocab.json").exists() and (folder / "merges.txt").exists()

    # The real checkpoint's captioning path: images only; generate() builds "<image> x Q, </s>" itself.
    inputs = processor(images=[Image.open(val[0].frame)], return_tensors="pt")
    assert list(inputs.keys()) == ["pixel_values"]
    out = model.generate(**inputs, max_new_tokens=5)
    assert out[0, :TINY.num_query_tokens + 1].tolist() == [model.config.image_token_index] * 4 + [2]

    paths = [p.frame for p in train + val]
    captions = caption_frames(model, processor, paths, batch_size=4, max_new_tokens=6, progress=False)
    assert len(captions) == len(paths) and all(isinstance(c, str) for c in captions)
    assert "<image>" not in "".join(captions)
    # batching does not change greedy captions
    assert caption_frames(model, processor, paths[:3], batch_size=1, max_new_tokens=6, progress=False) == captions[:3]

    # A text prompt (BLIP-2's VQA path) gets the Q image tokens in front of the BOS, as for the real checkpoint.
    prompted = processor(images=[Image.open(val[0].frame)], text="a photo of", return_tensors="pt")
    assert prompted["input_ids"][0, :5].tolist() == [model.config.image_token_index] * 4 + [2]
    assert model(**prompted).logits.shape[1] == prompted["input_ids"].shape[1]


def test_same_seed_same_weights(trained):
    root, *_ = trained
    a, b = load_file(root / "run0" / "model.safetensors"), load_file(root / "run1" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the query tokens are trained from N(0, 0.02), not the zeros transformers initialises them to
    assert a["query_tokens"].std() > 0.005


def test_quality_json(trained):
    root, _, val, runs = trained
    quality = json.loads((root / "run0" / "quality.json").read_text())
    assert quality == runs[0]
    for key in ("right_class", "chance", "majority_class", "exact_caption", "brightness_word", "train_right_class",
                "examples", "val_errors", "steps", "batch_size", "lr", "parameters", "train_cpu_seconds",
                "train_wall_seconds", "cpu_seconds", "wall_seconds", "settings"):
        assert key in quality, key
    assert set(quality["right_class"]) == {"toy", "overall"}
    assert quality["chance"] == {"toy": pytest.approx(1 / 3, abs=1e-4), "overall": pytest.approx(1 / 3, abs=1e-4)}
    assert 0.0 <= quality["right_class"]["overall"] <= 1.0
    assert quality["steps"] == TINY.steps and quality["n_val"] == {"toy": len(val)}
    assert quality["examples"]["toy"][0]["reference"] == val[0].caption


def test_learns_to_name_the_colour(tmp_path):
    """A hundred steps teach a small captioner to name held-out squares' colours: captions depend on the image."""
    train, val = square_pairs(tmp_path / "frames", 4), square_pairs(tmp_path / "frames", 1, "val", seed=1)
    settings = replace(TINY, steps=100, batch_size=12, lr=3e-3, warmup_steps=10, vision_hidden=64,
                       qformer_hidden=64, text_hidden=64)
    quality = train_blip2(train, val, tmp_path / "run", settings)
    assert quality["right_class"]["overall"] == 1.0
    assert [e["generated"] for e in quality["examples"]["toy"]] == [p.caption for p in val]


def test_registry_loads_it_as_the_captioner(trained, tmp_path):
    root, _, val, _ = trained
    cfg = from_dict(tiny_config_dict(tmp_path / "sd", models={"sd": str(tmp_path / "sd"), "blip2": str(root / "run0")}))
    model, processor = registry.load_blip2(cfg)
    assert not model.training
    captions = caption_frames(model, processor, [val[0].frame], batch_size=1)
    assert len(captions) == 1 and isinstance(captions[0], str)


def test_captions_command_loads_blip2_in_the_configured_dtype(trained, tmp_path, monkeypatch):
    """data.caption_dtype (paper profile: bfloat16): BLIP-2 OPT-2.7b in float32 peaked at 20.1 GiB while loading
    in the rehearsal, in bfloat16 at 11.8 GiB (the recorded rehearsal)."""


    from sonic import cli
    from sonic.data import features

    root, _, val, _ = trained
    seen = {}

    def fake_captions(model, processor, manifest, out, batch_size):
        seen["dtype"] = model.dtype
        seen["captions"] = features.caption_frames(model, processor, [val[0].frame], batch_size=1)

    monkeypatch.setattr(features, "compute_captions", fake_captions)
    settings = {"models": {"blip2": str(root / "run0")}, "data": {"caption_dtype": "bfloat16"}}
    (tmp_path / "manifest.csv").write_text("clip_id\nc0\n")  # read before the model loads, then not used
    argv = ["features", "captions", "--settings", json.dumps(settings), "--manifest", str(tmp_path / "manifest.csv"),
            "--out", str(tmp_path / "captions.csv")]
    assert cli.main(argv) == 0
    assert seen["dtype"] == torch.bfloat16 and isinstance(seen["captions"][0], str)
