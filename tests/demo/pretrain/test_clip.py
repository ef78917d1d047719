"""Miniature CLIP (docs/pretrained-models.md): CLIP-format tokenizer, a save_pretrained folder every CLIP
class loads, determinism."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPImageProcessor, CLIPModel, CLIPTextModel, CLIPTokenizer

from sonic.models import registry
from sonic.config import from_dict
from sonic.demo.pretrain.clip import ClipSettings, _multi_positive_loss, build_tokenizer, train_clip
from tests.tiny import square_pairs, tiny_config_dict

TINY = ClipSettings(
    steps=3, batch_size=6, warmup_steps=1, image_size=16, patch_size=8, vision_hidden=32, vision_layers=1,
    vision_heads=2, text_hidden=128, text_layers=1, text_heads=2, mlp_ratio=2, projection_dim=16, vocab_size=600,
)


@pytest.fixture(scope="module")
def trained(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    train, val = square_pairs(root / "frames"), square_pairs(root / "frames", 1, "val", seed=1)
    runs = [train_clip(train, val, root / f"run{k}", TINY) for k in range(2)]
    return root, runs


def test_tokenizer_round_trip(tmp_path):
    texts = ["a bright photo of a drumstick hitting wood", "a dim photo of a landscape with fire crackling",
             "wood", "fire crackling", "forest+rain"]
    tok = build_tokenizer(texts, tmp_path / "a", vocab_size=600)
    assert (tmp_path / "a" / "vocab.json").exists() and (tmp_path / "a" / "merges.txt").exists()
    loaded = CLIPTokenizer.from_pretrained(tmp_path / "a")
    assert loaded.get_vocab() == tok.get_vocab() and len(loaded) <= 600
    assert loaded.model_max_length == 77
    # OpenAI's layout: the specials are the two highest ids; padding uses <|endoftext|>.
    assert (loaded.bos_token_id, loaded.eos_token_id) == (len(loaded) - 2, len(loaded) - 1)
    assert loaded.tokenize("A Bright photo of wood") == ["a</w>", "bright</w>", "photo</w>", "of</w>", "wood</w>"]
    assert loaded.tokenize("forest+rain") == ["forest</w>", "+</w>", "rain</w>"]
    ids = loaded("a dim photo of wood", padding="max_length", max_length=loaded.model_max_length).input_ids
    assert len(ids) == 77 and ids[0] == loaded.bos_token_id and ids[6:] == [loaded.eos_token_id] * 71
    assert loaded.decode(ids, skip_special_tokens=True) == "a dim photo of wood"
    assert loaded.tokenize("zebra!")  # unseen words fall back to byte symbols, never to <unk>
    assert loaded.unk_token_id not in loaded("zebra!", add_special_tokens=False).input_ids
    # deterministic: the same texts give the same files
    build_tokenizer(list(reversed(texts)), tmp_path / "b", vocab_size=600)
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_saved_folder_loads_as_every_clip_class(trained):
    root, _ = trained
    folder = root / "run0"
    model = CLIPModel.from_pretrained(folder)
    text = CLIPTextModel.from_pretrained(folder)  # how the SD text encoder is loaded
    tok = CLIPTokenizer.from_pretrained(folder)
    proc = CLIPImageProcessor.from_pretrained(folder)
    assert text.config.hidden_size == 128 and text.config.max_position_embeddings == 77
    assert text.config.eos_token_id == tok.eos_token_id
    ids = tok(["a photo of a red square"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = text(ids).last_hidden_state
        # the text tower inside CLIPModel is the same network
        assert torch.equal(hidden, model.text_model(ids).last_hidden_state)
    assert hidden.shape == (1, 77, 128)
    assert proc.crop_size == {"height": 16, "width": 16}
    pixels = proc(images=[Image.new("RGB", (32, 32), (200, 10, 10))], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 16, 16)
    with torch.no_grad():
        assert model.get_image_features(pixel_values=pixels).pooler_output.shape == (1, 16)


def test_same_seed_same_weights(trained):
    root, _ = trained
    a, b = load_file(root / "run0" / "model.safetensors"), load_file(root / "run1" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    init = CLIPModel.from_pretrained(root / "run0")  # and training moved them away from the initialisation
    torch.manual_seed(TINY.seed)
    fresh = CLIPModel(init.config)
    assert not torch.equal(fresh.visual_projection.weight, init.visual_projection.weight)


def test_quality_json(trained):
    root, runs = trained
    quality = json.loads((root / "run0" / "quality.json").read_text())
    assert quality == json.loads(json.dumps(runs[0]))
    for key in ("zero_shot_accuracy", "chance", "labels", "steps", "cpu_seconds", "wall_seconds"):
        assert key in quality
    assert quality["labels"] == {"toy": ["blue", "green", "red"]}
    assert quality["chance"] == {"toy": pytest.approx(1 / 3)}
    assert set(quality["zero_shot_accuracy"]) == {"toy", "overall"}
    assert 0.0 <= quality["zero_shot_accuracy"]["toy"] <= 1.0
    assert quality["steps"] == TINY.steps


def test_multi_positive_loss_is_clip_loss_for_unique_texts():
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    target = torch.arange(5)
    clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    assert torch.allclose(_multi_positive_loss(logits, torch.eye(5, dtype=torch.bool)), clip)
    # a duplicated text is not a negative: scoring both copies equally high costs less than scoring one
    positive = torch.eye(4, dtype=torch.bool)
    positive[0, 1] = positive[1, 0] = True
    both = torch.full((4, 4), -5.0).fill_diagonal_(5.0)
    both[0, 1] = both[1, 0] = 5.0
    one = torch.full((4, 4), -5.0).fill_diagonal_(5.0)
    assert _multi_positive_loss(both, positive) < _multi_positive_loss(one, positive)


def test_learns_coloured_squares(tmp_path):
    train, val = square_pairs(tmp_path / "f", 4), square_pairs(tmp_path / "f", 2, "val", seed=3)
    quality = train_clip(train, val, tmp_path / "m", replace(TINY, steps=40, lr=3e-3))
    assert quality["zero_shot_accuracy"]["toy"] == 1.0


def test_registry_loads_it_for_ais_and_eval(trained, tmp_path):
    """Both CLIP keys of the paper profile read the miniature folder through the same loader (HF_HUB_OFFLINE=1)."""
    root, _ = trained
    models = {"sd": str(tmp_path / "sd"), "clip_ais": str(root / "run0"), "clip_eval": str(root / "run0")}
    cfg = from_dict(tiny_config_dict(tmp_path / "sd", models=models))
    for key in ("clip_ais", "clip_eval"):
        clip = registry.load_clip(cfg, key)
        assert not clip.model.training and not any(p.requires_grad for p in clip.model.parameters())
        batch = clip.tokenizer(["a photo of a red square"], return_tensors="pt")
        assert clip.model.get_text_features(**batch) is not None
