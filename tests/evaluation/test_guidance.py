"""Guidance, measured (sonic/evaluation/guidance.py): the sweep on a tiny world with the three Table 1 methods
trained for a few steps, its CSV, figures and images; and the rule that chooses the scale, on constructed sweeps."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from sonic import competitors
from sonic import config as config_mod
from sonic.cli import main
from sonic.data.tables import read_csv
from sonic.evaluation.commands import guidance
from sonic.evaluation.guidance import (SWEEP_COLUMNS, choose_guidance, scale_folder, sweep_clips, sweep_jobs,
                                       write_choice)
from sonic.evaluation.runs import image_name
from sonic.images import load_images
from sonic.metrics.saturation import clipped_share
from sonic.metrics.shape import fit_frames
from tests.competitors import COMPETITORS, make_world
from tests.tiny import tiny_config_dict, write_clip_folder, write_fid_folder

METHODS = ["SonicDiffusion", "AudioToken", "GlueGen"]
SCALES = [1, 3]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """make_world's dataset (3 colours x 3 clips, red2 in val) with a CLIP, a FID network, a references file
    holding the shape classifier of the train frames, and trained weights of the three methods."""
    from sonic.models.adapters import install_adapters
    from sonic.models.io import save_weights
    from sonic.models.params import projector_config
    from sonic.models.projector import AudioProjector
    from sonic.models.registry import load_stable_diffusion

    root = tmp_path_factory.mktemp("guidance")
    _, files = make_world(root)
    data = tiny_config_dict(root / "sd", competitors=COMPETITORS,
                            training={"checkpoint_every": 2, "checkpoints_total_limit": 1},
                            evaluation={"steps": 2, "guidance_sweep": {"scales": SCALES, "clips_per_class": 2}})
    data["models"].update({"clip_ais": str(write_clip_folder(root / "clip")), "fid_features": str(
        write_fid_folder(root / "fid"))})
    data["models"]["clip_eval"] = data["models"]["clip_ais"]
    cfg = config_mod.from_dict(data)
    weights = {}
    for method in METHODS[1:]:
        competitors.train(cfg, method.lower(), out=str(root / method), progress=False, **files)
        weights[method] = str(root / method / "weights")
    torch.manual_seed(0)
    unet = load_stable_diffusion(cfg).unet
    adapters = install_adapters(unet, cfg.adapters.placement)
    for _, m in adapters.modules():
        m.gamma.data.fill_(0.5)
    weights["SonicDiffusion"] = str(save_weights(root / "full", AudioProjector(
        projector_config(cfg, unet.config.cross_attention_dim)), adapters))
    table = read_csv(files["manifest"])
    train = table[table["split"] == "train"]
    shape, note = fit_frames(train["frame"].astype(str).tolist(), train["label"].astype(str).tolist(), 16)
    val = table[table["split"] == "val"].reset_index(drop=True)
    n = len(val)
    save_file({"audio": torch.zeros(n, 4), "frames": torch.zeros(n, 4), "fid": torch.zeros(n, 16),
               **shape.to_tensors()}, str(root / "refs.safetensors"),
              metadata={"shape_labels": json.dumps(shape.labels), "shape_real": "1.0", "shape_note": note})
    pd.DataFrame({"row": range(n), "clip_id": val["clip_id"], "label": val["label"]}).to_csv(root / "refs.csv",
                                                                                          index=False)
    files |= {"refs": str(root / "refs.safetensors"), "refs_index": str(root / "refs.csv")}
    return root, cfg, files, weights, shape


@pytest.fixture(scope="module")
def swept(world):
    root, cfg, files, weights, _ = world
    out = root / "out"
    guidance(cfg, "toy", METHODS, [weights[m] for m in METHODS], files["manifest"], files["clap"],
             files["clap_index"], files["refs"], files["refs_index"], str(out / "images"), str(out / "toy.csv"),
             str(out / "toy.png"), str(out / "toy_grid.png"))
    return out


def test_sweep_clips_are_the_first_train_clips_of_each_label(world):
    _, _, files, _, _ = world
    clips = sweep_clips(files["manifest"], 2)
    assert clips["clip_id"].tolist() == ["blue0", "blue1", "green0", "green1", "red0", "red1"]  # red2 is val
    assert sweep_clips(files["manifest"], 5)["clip_id"].tolist() == [
        "blue0", "blue1", "blue2", "green0", "green1", "green2", "red0", "red1"]
    jobs = sweep_jobs(clips.head(2), seeds=2)
    assert jobs.values.tolist() == [["blue0", 0, "blue"], ["blue0", 1, "blue"], ["blue1", 0, "blue"],
                                    ["blue1", 1, "blue"]]


def test_the_sweep_writes_one_row_per_method_and_scale(world, swept):
    root, cfg, files, weights, shape = world
    table = read_csv(swept / "toy.csv")
    assert list(table.columns) == SWEEP_COLUMNS
    assert list(zip(table["method"], table["guidance"])) == [(m, float(s)) for m in METHODS for s in SCALES]
    assert (table["dataset"] == "toy").all() and (table["images"] == 6).all()
    for column in ("AIC", "SAC", "clipped", "clipped_real"):
        assert table[column].between(0, 1).all(), column
    assert np.isfinite(table["FID"]).all() and (table["FID"] >= 0).all()
    assert (table["chance_AIC"] == 1 / 3).all() and (table["chance_SAC"] == 1 / 3).all()
    # the real frames' share: the train frames of the swept clips (a coloured square on grey: nothing clipped)
    frames = load_images(sweep_clips(files["manifest"], 2)["frame"].tolist(), 16)
    assert clipped_share(frames) == 0 and (table["clipped_real"] == 0).all()
    # the images are where the layout says, every swept clip; measured as saved
    clips = ["blue0", "blue1", "green0", "green1", "red0", "red1"]
    for method in METHODS:
        for scale in SCALES:
            folder = scale_folder(swept / "images", method, scale)
            assert sorted(p.name for p in folder.glob("*.png")) == sorted(image_name(c, 0) for c in clips)
    row = table[(table["method"] == "GlueGen") & (table["guidance"] == 3.0)].iloc[0]
    folder = scale_folder(swept / "images", "GlueGen", 3)
    images = load_images([folder / image_name(c, 0) for c in clips], 16)
    assert row["clipped"] == pytest.approx(clipped_share(images))
    labels = [c[:-1] for c in clips]
    assert row["SAC"] == pytest.approx(np.mean([p == t for p, t in zip(shape.predict(images), labels)]))
    low = load_images([scale_folder(swept / "images", "GlueGen", 1) / image_name(c, 0) for c in clips], 16)
    assert not torch.equal(low, images)  # the scale reaches the sampler
    # the figure and the grid: the real frames, then 3 methods x 2 scales, one column per class
    from PIL import Image

    assert Image.open(swept / "toy.png").size[0] > 400
    assert Image.open(swept / "toy_grid.png").size == (120 + 3 * 64, 14 + 7 * 64)


def test_the_sweep_needs_a_configured_sweep_and_one_weights_per_method(world, tmp_path):
    root, cfg, files, weights, _ = world
    from dataclasses import replace

    none = replace(cfg, evaluation=replace(cfg.evaluation, guidance_sweep=None))
    args = (files["manifest"], files["clap"], files["clap_index"], files["refs"], files["refs_index"],
            str(tmp_path / "i"), str(tmp_path / "a.csv"), str(tmp_path / "a.png"), str(tmp_path / "g.png"))
    with pytest.raises(config_mod.ConfigError, match="guidance_sweep is null"):
        guidance(none, "toy", ["GlueGen"], [weights["GlueGen"]], *args)
    with pytest.raises(config_mod.ConfigError, match="one of each per method"):
        guidance(cfg, "toy", METHODS, [weights["GlueGen"]], *args)


def sweep_table(sac: dict, clipped: dict, pairs=(("a", "M"), ("a", "N"), ("b", "M"), ("b", "N"))) -> pd.DataFrame:
    """Rows of constructed sweeps: ``sac[scale]`` and ``clipped[scale]`` list one value per (dataset, method) pair."""
    rows = [{"dataset": d, "method": m, "guidance": float(s), "images": 4, "AIC": 0.5, "SAC": sac[s][k], "FID": 1.0,
             "clipped": clipped[s][k], "clipped_real": 0.01, "chance_AIC": 0.25, "chance_SAC": 0.25}
            for s in sac for k, (d, m) in enumerate(pairs)]
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def test_the_rule_takes_the_highest_mean_sac_within_the_clipping_bound():
    sac = {1: [0.2, 0.4, 0.3, 0.3], 2: [0.5, 0.5, 0.4, 0.6], 3: [0.9, 0.5, 0.7, 0.7], 5: [1.0, 1.0, 0.9, 0.9]}
    clean = {s: [0.0] * 4 for s in sac}
    assert choose_guidance(sweep_table(sac, clean), 0.05)["guidance_scale"] == 5  # all pass: max mean SAC
    clipped = clean | {3: [0.09, 0.0, 0.0, 0.0], 5: [0.2, 0.0, 0.0, 0.0]}  # means 0.0225 and 0.05
    choice = choose_guidance(sweep_table(sac, clipped), 0.05)
    assert choice["guidance_scale"] == 5 and choice["passed_clipping_bound"]  # the bound holds on the mean (<=)
    choice = choose_guidance(sweep_table(sac, clipped | {5: [0.21, 0.0, 0.0, 0.0]}), 0.05)
    assert choice["guidance_scale"] == 3  # 5 has the best SAC but clips over the bound
    per_scale = {s["guidance"]: s for s in choice["scales"]}
    assert per_scale[3.0]["SAC"] == pytest.approx(0.7) and per_scale[3.0]["clipped"] == pytest.approx(0.0225)
    assert [s["passes"] for s in choice["scales"]] == [True, True, True, False]
    assert choice["pairs"] == 4 and choice["datasets"] == ["a", "b"] and choice["methods"] == ["M", "N"]


def test_ties_go_to_the_smaller_scale_and_with_none_passing_the_least_clipping_wins():
    sac = {1: [0.2] * 4, 2: [0.6, 0.4, 0.5, 0.5], 3: [0.5] * 4, 5: [0.9] * 4}
    clipped = {1: [0.0] * 4, 2: [0.0] * 4, 3: [0.01] * 4, 5: [0.5] * 4}
    assert choose_guidance(sweep_table(sac, clipped), 0.05)["guidance_scale"] == 2  # 2 and 3 tie at 0.5
    over = {1: [0.3] * 4, 2: [0.1] * 4, 3: [0.1] * 4, 5: [0.6] * 4}
    choice = choose_guidance(sweep_table(sac, over), 0.05)
    assert choice["guidance_scale"] == 2 and not choice["passed_clipping_bound"]  # least clipping, tie -> smaller
    assert "least clipping" in choice["reason"]


def test_a_dataset_without_sac_does_not_count_and_incomplete_sweeps_are_errors():
    sac = {1: [0.5, 0.5, float("nan"), float("nan")], 2: [0.7, 0.7, float("nan"), float("nan")]}
    clean = {s: [0.0] * 4 for s in sac}
    assert choose_guidance(sweep_table(sac, clean), 0.05)["guidance_scale"] == 2
    with pytest.raises(ValueError, match="no guidance sweep row has a SAC"):
        choose_guidance(sweep_table({1: [float("nan")] * 4}, {1: [0.0] * 4}), 0.05)
    table = sweep_table({1: [0.5] * 4, 2: [0.6] * 4}, {1: [0.0] * 4, 2: [0.0] * 4})
    with pytest.raises(ValueError, match="measured once at each of the scales"):
        choose_guidance(table.iloc[:-1], 0.05)
    with pytest.raises(ValueError, match="measured once"):
        choose_guidance(pd.concat([table, table.iloc[:1]]), 0.05)


def test_the_choice_command_writes_json_and_markdown(tmp_path):
    sac = {1: [0.2] * 4, 3: [0.6] * 4, 8: [0.8] * 4}
    clipped = {1: [0.0] * 4, 3: [0.01] * 4, 8: [0.3] * 4}
    table = sweep_table(sac, clipped)
    paths = []
    for dataset, rows in table.groupby("dataset"):
        paths.append(str(tmp_path / f"guidance_{dataset}.csv"))
        rows.to_csv(paths[-1], index=False)
    assert main(["evaluate", "guidance-choice", "--sweeps", *paths, "--max-clipped", "0.05", "--out",
                 str(tmp_path / "choice.json"), "--markdown", str(tmp_path / "guidance.md")]) == 0
    choice = json.loads((tmp_path / "choice.json").read_text())
    assert choice["guidance_scale"] == 3 and choice["sweeps"] == paths and "before any test clip" in choice["rule"]
    assert choice == write_choice(paths, 0.05, tmp_path / "again.json", tmp_path / "again.md")
    md = (tmp_path / "guidance.md").read_text()
    assert "| 3 | 0.600 | 0.500 | 0.0100 | yes | **chosen** |" in md
    assert "| 8 | 0.800 | 0.500 | 0.3000 | no |  |" in md
