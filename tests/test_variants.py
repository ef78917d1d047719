"""Variants as configuration: overrides, and which variants share a stage-1 run (paper §3.3-3.4)."""

from pathlib import Path

import pytest
import yaml

from sonic import variants

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("config", ["config.yaml", "workflow/configs/paper.yaml"])
def test_shipped_variants_share_stage1_as_the_paper_requires(config):
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw = variants.merge(raw, yaml.safe_load((ROOT / config).read_text()))
    runs = variants.stage1_runs(raw)
    assert runs == {"full": "full", "no_contrastive": "no_contrastive", "no_mse": "no_mse", "no_stage1": None,
                    "projector_frozen_stage2": "full", "single_token": "single_token", "decoder_6_11": "full",
                    "all_layers": "full"}


def test_resolve_applies_overrides():
    raw = {"seed": 0, "projector": {"num_tokens": 77, "num_heads": 4}, "adapters": {"placement": "mid_and_decoder"},
           "training": {"stage1": {"alpha_mse": 0.25, "steps": 10}, "stage2": {"lr_adapters": 1e-4},
                        "variants": {"full": {}, "k1": {"projector": {"num_tokens": 1}},
                                     "none": {"stage1": None}, "dec": {"adapters": {"placement": "decoder_6_11"}}}}}
    assert variants.resolve(raw, "k1")["projector"] == {"num_tokens": 1, "num_heads": 4}
    assert variants.resolve(raw, "none")["stage1"] is None
    assert variants.resolve(raw, "dec")["adapters"] == {"placement": "decoder_6_11"}
    assert variants.resolve(raw, "full")["stage1"] == {"alpha_mse": 0.25, "steps": 10}
    assert variants.stage1_runs(raw) == {"full": "full", "k1": "k1", "none": None, "dec": "full"}
    # a change of anything stage 1 reads separates the runs; the seed too
    assert variants.stage1_identity(raw, "full") != variants.stage1_identity(raw | {"seed": 1}, "full")
    with pytest.raises(ValueError, match="no variant"):
        variants.resolve(raw, "missing")
    raw["training"]["variants"]["bad"] = {"optimizer": {}}
    with pytest.raises(ValueError, match="unknown sections"):
        variants.resolve(raw, "bad")


def test_merge_is_recursive_and_copies():
    base = {"a": {"b": 1, "c": [1]}, "d": 2}
    out = variants.merge(base, {"a": {"b": 5}, "e": None})
    assert out == {"a": {"b": 5, "c": [1]}, "d": 2, "e": None}
    out["a"]["c"].append(2)
    assert base["a"]["c"] == [1]
