"""Random-weight, paper-size stand-ins in the real on-disk formats (sonic.demo.random_models, `sonic rehearse
models`). The large ones (SD-1.4, BLIP-2, CLIP) are written by the rehearsal run itself; here the vocabularies and
the files small enough for the suite, each read back by the loader the paper profile uses."""

import gzip
import hashlib
import json

import numpy as np
import pytest
import torch

from sonic.demo import random_models as rm


def test_synthetic_bpe_has_the_real_size_and_round_trips_any_text(tmp_path):
    from transformers import GPT2Tokenizer

    vocab, merges = rm.synthetic_bpe(["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"])
    assert len(vocab) == rm.BPE_VOCAB_SIZE == 50265 and vocab["<s>"] == 0 and vocab["<mask>"] == 50264
    assert len(merges) == 50265 - 4 - 256 - 1
    tok = GPT2Tokenizer(*rm._bpe_files(vocab, merges, tmp_path), unk_token="<unk>")
    text = "a dog barks at 3 o'clock — très bien"
    ids = tok(text).input_ids
    assert max(ids) < len(vocab) and tok.decode(ids) == text


def test_clip_vocabulary_is_checked_by_its_hash(tmp_path):
    fake = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    fake.write_bytes(gzip.compress(b"#version\nh e\n"))
    with pytest.raises(ValueError, match=r"bpe_simple_vocab_16e6.txt.gz: SHA-256 .* is not CLIP's"):
        rm.clip_vocab_gz(tmp_path, fake)
    assert hashlib.sha256(b"").hexdigest() != rm.CLIP_VOCAB_SHA256


def test_release_files_import_and_msclap_checkpoint_loads(tmp_path):
    from sonic.models.msclap import load_msclap_2022
    from sonic.models.release import import_release

    rm.write_release(tmp_path / "audio_projector_landscape.pth", tmp_path / "landscape.pt", seed=0)
    out = import_release(tmp_path / "audio_projector_landscape.pth", tmp_path / "landscape.pt", tmp_path / "imported")
    config = json.loads((out / "config.json").read_text())
    assert config["projector"]["architecture"] == "release" and config["projector"]["audio_dim"] == 1024
    state = torch.load(tmp_path / "audio_projector_landscape.pth", weights_only=True)
    assert sum(v.numel() for v in state.values()) == 6_130_050  # the released projector's size
    encoder = load_msclap_2022(rm.write_msclap(tmp_path / "CLAP_weights_2022.pth"))
    emb = encoder.embed([np.random.default_rng(0).standard_normal(44_100).astype(np.float32) * 0.1])
    assert emb.shape == (1, 1024) and torch.isfinite(emb).all()


def test_wav2clip_and_fid_files_load_with_the_paper_loaders(tmp_path):
    from sonic.metrics.fid import InceptionFeatures
    from sonic.models.wav2clip import load_wav2clip

    w2c = load_wav2clip(rm.write_wav2clip(tmp_path / "Wav2CLIP.pt"))
    assert w2c(torch.zeros(1, 16_000)).shape == (1, 512)
    features = InceptionFeatures(str(rm.write_fid_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")))
    assert features(torch.rand(2, 3, 32, 32)).shape == (2, 2048)


def test_unknown_model_key_is_an_error():
    class Models:
        release = None
        sd = "x"

    class Cfg:
        models, seed = Models(), 0

    with pytest.raises(ValueError, match=r"unknown model\(s\) \['vae'\]"):
        rm.write_all(Cfg(), only=["vae"])
