"""Editing runs of Table 2 on tiny models: every source x every evaluation audio per method, the layout the scorer
reads, one inversion per source shared by every method, and the structure figures."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sonic import config as config_mod
from sonic.evaluation.edits import edit_run, source_images, source_shape_accuracy, structure_scores
from sonic.evaluation.runs import collect_folder, eval_jobs
from sonic.images import load_images
from sonic.metrics.shape import ShapeClassifier
from tests.tiny import AUDIO_DIM, tiny_config_dict, write_clip_folder, write_sd_folder

LABELS = ["rain", "fire"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("edit_world")
    sd = write_sd_folder(root / "sd")
    clip = write_clip_folder(root / "clip")
    rows, rng = [], np.random.default_rng(0)
    (root / "frames").mkdir()
    for lab in LABELS:
        for i, split in enumerate(["train", "val", "val", "val"]):
            cid = f"{lab}{i}"
            frame = root / "frames" / f"{cid}.png"
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(frame)
            rows.append({"clip_id": cid, "label": lab, "split": split, "eval": i in (1, 2), "frame": str(frame)})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    save_file({"embeddings": torch.randn(len(rows), AUDIO_DIM, generator=torch.Generator().manual_seed(0))},
              str(root / "clap.safetensors"))
    pd.DataFrame({"row": range(len(rows)), "clip_id": [r["clip_id"] for r in rows]}).to_csv(root / "clap.csv",
                                                                                         index=False)
    data = tiny_config_dict(sd, editing={"num_sources": 2, "steps": 3})
    data["models"].update({"clip_ais": str(clip), "clip_eval": str(clip)})
    cfg = config_mod.from_dict(data)

    from sonic.models.adapters import install_adapters
    from sonic.models.io import save_weights
    from sonic.models.projector import AudioProjector
    from sonic.models.params import projector_config
    from sonic.models.registry import load_stable_diffusion

    torch.manual_seed(0)
    unet = load_stable_diffusion(cfg).unet
    adapters = install_adapters(unet, cfg.adapters.placement)
    for _, m in adapters.modules():
        m.gamma.data.fill_(0.5)
    save_weights(root / "weights", AudioProjector(projector_config(cfg, unet.config.cross_attention_dim)), adapters)
    return root, cfg, manifest


def test_sources_default_to_held_out_frames_outside_the_evaluation_subset(world):
    root, _, manifest = world
    sources = source_images(manifest, None, 2)
    assert [p.name for p in sources] == ["rain3.png", "fire3.png"]  # val, not eval, one per class
    assert source_images(manifest, str(root / "frames"), 1) == [root / "frames" / "fire0.png"]
    with pytest.raises(FileNotFoundError, match="no images"):
        source_images(manifest, str(root / "sd"), 1)


def test_edit_runs_share_one_inversion_per_source(world, tmp_path):
    root, cfg, manifest = world
    sources = source_images(manifest, None, 2)
    cache = tmp_path / "inversions"
    args = (manifest, root / "clap.safetensors", root / "clap.csv", sources)
    ours = edit_run(cfg, "SonicDiffusion", str(root / "weights"), *args, tmp_path / "sonic", cache)
    jobs = eval_jobs(manifest, 1)
    assert len(ours) == len(sources) * len(jobs) == 8
    found, missing = collect_folder(tmp_path / "sonic", eval_jobs(manifest, 2), "SonicDiffusion")
    assert not missing and len(found) == 8  # the scorer reads source j as seed j
    s = json.loads((tmp_path / "sonic" / "structure.json").read_text())
    assert s["inversion_cache"] == {"hits": 0, "misses": 2}
    assert -1 <= s["source_similarity"] <= 1 and 0 <= s["source_AIC"] <= 1
    assert -1 <= s["other_edge_ssim"] <= 1 and -1 <= s["edge_ssim"] <= 1
    # the SAC the edits start from (added when scoring, from the references' shape classifier), as source_AIC
    res = cfg.generation.resolution
    shape = ShapeClassifier.fit(load_images([str(root / "frames" / f"{lab}0.png") for lab in LABELS], res), LABELS)
    by_source = shape.predict(load_images([str(p) for p in sources], res))
    expected = np.mean([by_source[j] == lab for j, lab in zip(ours["seed"], ours["label"])])
    assert source_shape_accuracy(shape, tmp_path / "sonic", res) == pytest.approx(expected)
    assert source_shape_accuracy(None, tmp_path / "sonic", res) is None

    pnp = edit_run(cfg, "PnP", str(root / "no_weights"), *args, tmp_path / "pnp", cache)  # the base SD alone
    s = json.loads((tmp_path / "pnp" / "structure.json").read_text())
    assert s["inversion_cache"] == {"hits": 2, "misses": 0}  # the same inversions, reused by another method
    assert set(pnp["method"]) == {"PnP"}
    # the text-label baseline edits differ by label, and differ from the audio edits
    a = np.asarray(Image.open(pnp["path"][0]), dtype=float)
    b = np.asarray(Image.open(ours["path"][0]), dtype=float)
    assert np.abs(a - b).mean() > 0
    with pytest.raises(ValueError, match="unknown editing method"):
        edit_run(cfg, "CoDi", str(root / "weights"), *args, tmp_path / "x", cache)


def test_structure_scores_of_unchanged_sources(world):
    """Edits that are their sources: edge SSIM 1 and CLIP similarity 1 to the own source, less to the others."""
    from sonic.models import registry

    root, cfg, manifest = world
    sources = load_images([str(p) for p in source_images(manifest, None, 2)], cfg.generation.resolution)
    own = torch.tensor([0, 1, 1])
    s = structure_scores(registry.load_clip(cfg, "clip_eval"), sources, sources[own], own, ["fire", "rain", "fire"],
                         ["fire", "rain"])
    assert s["edge_ssim"] == pytest.approx(1.0, abs=1e-5) and s["source_similarity"] == pytest.approx(1.0, abs=1e-5)
    assert s["other_edge_ssim"] < 0.9 and s["other_source_similarity"] < 1.0
    assert 0 <= s["source_AIC"] <= 1
