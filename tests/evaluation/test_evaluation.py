"""Evaluation runs (docs/evaluation.md): the evaluation subset, generation runs and their layout, missing images
reported, scoring from cached references against direct computations, and the tables."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from sonic import config as config_mod
from sonic.data.tables import read_csv
from sonic.evaluation import tables
from sonic.evaluation.references import References, fixed_length
from sonic.evaluation.runs import collect_folder, eval_jobs, generate_run, image_name
from sonic.images import load_images
from sonic.metrics.shape import ShapeClassifier
from tests.tiny import tiny_config_dict, write_clip_folder, write_fid_folder

LABELS = ["rain", "fire", "wind"]


def write_manifest(path, n_val_per_label=2):
    rows = []
    for lab in LABELS:
        for i in range(3):
            rows.append({"clip_id": f"{lab}{i}", "label": lab, "split": "train", "eval": False})
        for i in range(n_val_per_label):
            rows.append({"clip_id": f"{lab}v{i}", "label": lab, "split": "val", "eval": i == 0})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_clap(folder, manifest, dim=8):
    from safetensors.torch import save_file

    table = read_csv(manifest)
    emb = torch.randn(len(table), dim, generator=torch.Generator().manual_seed(0))
    save_file({"embeddings": emb}, str(folder / "clap.safetensors"))
    pd.DataFrame({"row": range(len(table)), "clip_id": table["clip_id"]}).to_csv(folder / "clap_index.csv",
                                                                                  index=False)
    return folder / "clap.safetensors", folder / "clap_index.csv", emb


class FakeGenerator:
    """Images whose colour is a function of (embedding, seed); records its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, audio_embeds, prompt=None, seeds=(0,), num_inference_steps=50, guidance_scale=8.0,
                 batch_size=8, progress=True):
        self.calls.append((len(audio_embeds), tuple(seeds), num_inference_steps, guidance_scale))
        out = []
        for e in audio_embeds:
            for s in seeds:
                value = torch.sigmoid(e[:3] + s)  # (3,)
                out.append(value[:, None, None].expand(3, 16, 16))
        return torch.stack(out)


def test_eval_jobs_take_the_eval_clips_times_seeds(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv")
    jobs = eval_jobs(manifest, seeds=3)
    assert list(jobs.columns) == ["clip_id", "seed", "label"]
    assert jobs["clip_id"].tolist() == [c for c in ["rainv0", "firev0", "windv0"] for _ in range(3)]
    assert jobs["seed"].tolist() == [0, 1, 2] * 3
    empty = read_csv(manifest).assign(eval=False)
    empty.to_csv(tmp_path / "none.csv", index=False)
    with pytest.raises(ValueError, match="no evaluation clips"):
        eval_jobs(tmp_path / "none.csv", 1)


def test_generation_run_layout_and_missing_images(tmp_path):
    manifest = write_manifest(tmp_path / "m.csv")
    clap, index, emb = write_clap(tmp_path, manifest)
    jobs = eval_jobs(manifest, seeds=2)
    gen = FakeGenerator()
    run = generate_run(gen, jobs, clap, index, tmp_path / "out", "Fake", steps=7, guidance_scale=3.0, batch_size=4)
    assert list(run.columns) == ["clip_id", "seed", "label", "method", "path"]
    assert len(run) == 6 and set(run["method"]) == {"Fake"}
    assert all(c[2:] == (7, 3.0) and c[1] == (0, 1) for c in gen.calls)
    assert sum(c[0] for c in gen.calls) == 3  # each clip once, both seeds per call
    # each image is the generator's output for its own clip and seed
    rows = dict(zip(read_csv(index)["clip_id"], read_csv(index)["row"]))
    for clip_id, seed, path in run[["clip_id", "seed", "path"]].itertuples(index=False):
        expect = torch.sigmoid(emb[rows[clip_id], :3] + seed)
        got = load_images([path])[0, :, 0, 0]
        torch.testing.assert_close(got, expect, atol=1 / 255, rtol=0)
    assert (tmp_path / "out" / image_name("firev0", 1)).is_file()
    assert read_csv(tmp_path / "out" / "manifest.csv").equals(read_csv(tmp_path / "out" / "manifest.csv"))
    machine = json.loads((tmp_path / "out" / "machine.json").read_text())  # where the images were made
    assert machine["torch"] == torch.__version__ and machine["threads"] == torch.get_num_threads()
    assert machine["processor"]

    (tmp_path / "out" / image_name("windv0", 0)).unlink()
    found, missing = collect_folder(tmp_path / "out", jobs, "Fake")
    assert missing == ["windv0_0.png"] and len(found) == 5
    with pytest.raises(FileNotFoundError, match="no such folder"):
        collect_folder(tmp_path / "nowhere", jobs, "Fake")


def test_fixed_length_repeats_or_crops():
    w = np.arange(3, dtype=np.float32)
    assert fixed_length(w, 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    assert fixed_length(np.arange(10.0), 4).tolist() == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def clip_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    clip = write_clip_folder(root / "clip")
    data = tiny_config_dict(root / "sd")
    data["models"].update({"clip_ais": str(clip), "clip_eval": str(clip),
                           "fid_features": str(write_fid_folder(root / "fid"))})
    return config_mod.from_dict(data), clip


def test_scores_from_cached_references_equal_direct_computation(tmp_path, clip_cfg):
    from sonic.metrics.clip_scores import image_features, zero_shot
    from sonic.evaluation.references import batched, feature_network
    from sonic.evaluation.score import score_images
    from sonic.images import to_pil
    from sonic.metrics import fid
    from sonic.metrics.fid import FidNetFeatures
    from sonic.models.registry import load_clip
    from tests.metrics.test_metrics import loop_win_ratio

    cfg, _ = clip_cfg
    clip = load_clip(cfg, "clip_eval")
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(6, 3, 16, 16, generator=g)
    generated = torch.rand(5, 3, 16, 16, generator=g)
    paths = []
    for i, im in enumerate(to_pil(generated)):
        paths.append(str(tmp_path / f"g{i}.png"))
        im.save(paths[-1])
    generated = load_images(paths)  # what the scorer reads: 8-bit images
    ids = [f"c{i}" for i in range(6)]
    labels = ["rain", "fire", "wind", "rain", "fire", "wind"]
    audio = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=-1)
    shape = ShapeClassifier.fit(frames, labels)
    refs = References(ids, labels, audio, image_features(clip, frames),
                      batched(feature_network(cfg), frames), shape, 1.0, "fitted on 6 frames")
    own = [0, 2, 2, 5, 1]
    run = pd.DataFrame({"clip_id": [ids[i] for i in own], "seed": [0, 0, 1, 0, 0],
                        "label": [labels[i] for i in own], "path": paths})
    metrics, per_image = score_images(cfg, refs, run, LABELS)

    img = image_features(clip, generated)
    idx = torch.tensor(own)
    assert metrics["AIS"] == pytest.approx(loop_win_ratio(img, audio[idx], audio, idx), abs=1e-12)
    assert metrics["IIS"] == pytest.approx(loop_win_ratio(img, refs.frames[idx], refs.frames, idx), abs=1e-12)
    predicted = zero_shot(clip, generated, LABELS)
    assert per_image["predicted"].tolist() == predicted
    assert metrics["AIC"] == sum(p == t for p, t in zip(predicted, run["label"])) / 5
    by_shape = shape.predict(generated)  # SAC: the colour-blind classifier of the references
    assert per_image["predicted_shape"].tolist() == by_shape
    assert per_image["SAC"].tolist() == [float(p == t) for p, t in zip(by_shape, run["label"])]
    assert metrics["SAC"] == per_image["SAC"].mean()
    no_shape, no_shape_images = score_images(cfg, replace(refs, shape=None), run, LABELS)
    assert np.isnan(no_shape["SAC"]) and no_shape_images["SAC"].isna().all()
    assert {k: v for k, v in no_shape.items() if k != "SAC"} == {k: v for k, v in metrics.items() if k != "SAC"}
    assert metrics["FID"] == pytest.approx(fid(generated, frames, FidNetFeatures(cfg.models.fid_features)), rel=1e-5)
    with pytest.raises(ValueError, match="not validation references"):
        score_images(cfg, refs, run.assign(clip_id="other"), LABELS)
    # a dataset without labels: no AIC (no class to ask for), the rest unchanged
    no_labels, no_label_images = score_images(cfg, replace(refs, shape=None), run, None)
    assert np.isnan(no_labels["AIC"]) and no_label_images["AIC"].isna().all()
    assert {k: v for k, v in no_labels.items() if k not in ("AIC", "SAC")} == {
        k: v for k, v in metrics.items() if k not in ("AIC", "SAC")}


def test_one_score_call_for_several_methods_equals_one_call_each(tmp_path, clip_cfg):
    """`sonic evaluate score` with two methods (one process, models loaded once) writes what two calls write."""
    from safetensors.torch import save_file

    from sonic.evaluation import commands
    from sonic.metrics.clip_scores import image_features
    from sonic.evaluation.references import batched, feature_network
    from sonic.models.registry import load_clip

    cfg, _ = clip_cfg
    manifest = write_manifest(tmp_path / "manifest.csv")
    val = read_csv(manifest).query("split == 'val'").reset_index(drop=True)
    clip = load_clip(cfg, "clip_eval")
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(len(val), 3, 16, 16, generator=g)
    shape = ShapeClassifier.fit(frames, val["label"].tolist())
    save_file({"audio": torch.nn.functional.normalize(torch.randn(len(val), 16, generator=g), dim=-1),
               "frames": image_features(clip, frames), "fid": batched(feature_network(cfg), frames),
               **shape.to_tensors()}, str(tmp_path / "refs.safetensors"),
              metadata={"shape_labels": json.dumps(shape.labels), "shape_real": "0.5", "shape_note": "test"})
    pd.DataFrame({"row": range(len(val)), "clip_id": val["clip_id"], "label": val["label"]}).to_csv(
        tmp_path / "refs.csv", index=False)
    folders = {}
    for k, method in enumerate(["SonicDiffusion", "GlueGen"]):
        clap, clap_index, _ = write_clap(tmp_path, manifest, dim=8 + k)  # different images per method
        folders[method] = tmp_path / method
        generate_run(FakeGenerator(), eval_jobs(manifest, 2), clap, clap_index, folders[method], method, 1, 1.0)
    args = dict(dataset="d", manifest=str(manifest), refs=str(tmp_path / "refs.safetensors"),
                refs_index=str(tmp_path / "refs.csv"), seeds=2)
    together = commands.score(cfg, list(folders), images=[str(f) for f in folders.values()],
                              outs=[str(tmp_path / f"{m}.json") for m in folders],
                              per_image=[str(tmp_path / f"{m}.csv") for m in folders], **args)
    for method, result in zip(folders, together):
        alone = commands.score(cfg, [method], images=[str(folders[method])], outs=[str(tmp_path / "one.json")],
                               **args)[0]
        assert json.loads((tmp_path / f"{method}.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
        assert result == alone and result["method"] == method and result["images"] == 6
        assert 0 <= result["SAC_lo"] <= result["SAC"] <= result["SAC_hi"] <= 1
        assert 0 <= result["FID_lo"] <= result["FID"] <= result["FID_hi"]  # the bootstrap over images
        assert (result["SAC_real"], result["chance_SAC"]) == (0.5, 1 / 3)
    assert (together[0]["variant"], "variant" in together[1]) == ("full", False)
    per_image = read_csv(tmp_path / "GlueGen.csv")
    assert len(per_image) == 6 and per_image["SAC"].mean() == pytest.approx(together[1]["SAC"])
    # the fake generator paints uniform colours: one and the same shape prediction for every image, whatever colour
    assert per_image["predicted_shape"].nunique() == 1 and per_image["predicted_shape"][0] in LABELS
    # an editing run (structure.json, each edit's source in its manifest) gains the SAC its sources start from
    edits = folders["GlueGen"]
    run = read_csv(edits / "manifest.csv")
    run.assign(source=[str(next(iter(folders["SonicDiffusion"].glob("*.png"))))] * len(run)).to_csv(
        edits / "manifest.csv", index=False)
    (edits / "structure.json").write_text(json.dumps({"source_AIC": 0.25, "edits": len(run)}))
    edited = commands.score(cfg, ["GlueGen"], images=[str(edits)], outs=[str(tmp_path / "edit.json")], **args)[0]
    assert edited["source_AIC"] == 0.25 and edited["source_SAC"] == pytest.approx(1 / 3)  # one source, 3 labels
    with pytest.raises(config_mod.ConfigError, match="one of each per method"):
        commands.score(cfg, list(folders), images=[str(folders["GlueGen"])], outs=["a.json", "b.json"], **args)


def score_file(path, dataset, method, variant=None, **metrics):
    values = {"AIS": 0.5, "AIC": 0.5, "IIS": 0.5, "FID": 100.0, **metrics}
    path.write_text(json.dumps({"dataset": dataset, "method": method, "variant": variant, **values, "images": 10,
                                "missing": 0}))
    return path


def test_table1_csv_and_markdown_with_the_paper_numbers(tmp_path):
    files = [score_file(tmp_path / "a.json", "greatest_hits", "SonicDiffusion", "full", AIC=0.75, SAC=0.25),
             score_file(tmp_path / "b.json", "greatest_hits", "AudioToken"),
             score_file(tmp_path / "c.json", "landscape", "SonicDiffusion", "full", FID=50.0)]
    paper = tmp_path / "paper"
    paper.mkdir()
    pd.DataFrame([{"dataset": "greatest_hits", "method": "SonicDiffusion", "AIS": 0.6237, "AIC": 0.6050,
                   "IIS": 0.7411, "FID": 123.5},
                  {"dataset": "landscape_itw", "method": "SonicDiffusion", "AIS": 0.7390, "AIC": 0.5436,
                   "IIS": 0.8898, "FID": 118.6}]).to_csv(paper / "table1_generation.csv", index=False)
    table = tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md", paper, "Table 1")
    assert table[["dataset", "method"]].values.tolist() == [["greatest_hits", "SonicDiffusion"],
                                                            ["greatest_hits", "AudioToken"],
                                                            ["landscape", "SonicDiffusion"]]
    assert read_csv(tmp_path / "t.csv")["AIC"].tolist() == [0.75, 0.5, 0.5]
    assert list(read_csv(tmp_path / "t.csv").columns[2:7]) == ["AIS", "AIC", "SAC", "IIS", "FID"]
    md = (tmp_path / "t.md").read_text()
    assert "| dataset | method | AIS | AIC | SAC | IIS | FID | images |" in md
    # SAC beside AIC; the paper has no SAC, so its part of the cell is empty, as is ours where a file has none
    assert "| greatest_hits | SonicDiffusion | 0.5000 (0.6237) | 0.7500 (0.6050) | 0.2500 (–) |" in md
    assert ("| landscape | SonicDiffusion | 0.5000 (0.7390) | 0.5000 (0.5436) | – (–) | 0.5000 (0.8898) "
            "| 50.0 (118.6) |") in md
    assert "| greatest_hits | AudioToken | 0.5000 (–) |" in md  # not in this paper table
    plain = tables.markdown(table, "table1")
    assert not [line for line in plain.splitlines() if line.startswith("| ") and "(" in line]  # no paper numbers


def test_table1_footer_names_the_datasets_without_labels(tmp_path):
    files = [score_file(tmp_path / "a.json", "landscape", "SonicDiffusion", "full"),
             score_file(tmp_path / "b.json", "mine", "SonicDiffusion", "full", AIC=None, labelled=False),
             score_file(tmp_path / "c.json", "mine", "AudioToken", AIC=None, labelled=False)]
    table = tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md")
    assert table["labelled"].tolist() == [True, False, False] and table["AIC"].isna().tolist() == [False, True, True]
    md = (tmp_path / "t.md").read_text()
    assert "| mine | SonicDiffusion | 0.5000 | – |" in md
    assert ("mine: no labels (the videos sit directly under the dataset's root): AIC and SAC are not scored, as "
            "there is no class to ask for, and GlueGen (trained on prompts made of the clip's label) is left out; "
            "AIS, IIS and FID need no label.") in md
    assert "no labels" not in tables.markdown(table.iloc[:1], "table1")


def test_ablation_tables_key_rows_by_variant(tmp_path):
    files = [score_file(tmp_path / "a.json", "landscape", "SonicDiffusion", "full"),
             score_file(tmp_path / "b.json", "landscape", "SonicDiffusion-all_layers", "all_layers")]
    table = tables.collect(files, "tableS1")
    assert table["variant"].tolist() == ["mid_and_decoder", "all_layers"]  # the paper's name for the default
    with pytest.raises(ValueError, match="more than one score"):
        tables.collect(files + [files[0]], "tableS1")


def test_comparison_grids_place_frames_sources_and_missing_cells(tmp_path):
    """One row per eval clip (one per class first), the ground-truth frame or the edit source in column 0, each run's
    image of the clip beside it, grey where a run has none."""
    from PIL import Image

    from sonic.evaluation.figures import comparison_grid

    table = read_csv(write_manifest(tmp_path / "m.csv"))
    colours = {"rain": (0, 0, 255), "fire": (255, 0, 0), "wind": (0, 255, 0)}
    table["frame"] = ""
    for i, row in table.iterrows():
        table.loc[i, "frame"] = str(tmp_path / f"{row.clip_id}.png")
        Image.new("RGB", (16, 16), colours[row.label]).save(table.loc[i, "frame"])
    table.to_csv(tmp_path / "m.csv", index=False)
    source = tmp_path / "source.png"
    Image.new("RGB", (16, 16), (255, 255, 0)).save(source)
    run = tmp_path / "run"
    run.mkdir()
    evals = table[table["eval"]]
    for clip in evals["clip_id"][:-1]:  # the last clip has no image
        Image.new("RGB", (16, 16), (255, 255, 255)).save(run / image_name(clip, 0))
    pd.DataFrame({"clip_id": evals["clip_id"], "seed": 0, "source": str(source)}).to_csv(run / "manifest.csv",
                                                                                        index=False)
    cell, header, label_w = 96, 18, 110

    def pixel(grid, row, col):
        return grid.getpixel((label_w + col * cell + cell // 2, header + row * cell + cell // 2))

    grid = Image.open(comparison_grid(tmp_path / "m.csv", {"ours": run}, tmp_path / "g.png"))
    assert grid.size == (label_w + 2 * cell, header + 3 * cell)
    assert [pixel(grid, r, 0) for r in range(3)] == [colours[lab] for lab in evals["label"]]
    assert pixel(grid, 0, 1) == (255, 255, 255) and pixel(grid, 2, 1) == (204, 204, 204)  # missing: grey
    grid = Image.open(comparison_grid(tmp_path / "m.csv", {"ours": run}, tmp_path / "e.png", edits=True))
    assert [pixel(grid, r, 0) for r in range(3)] == [(255, 255, 0)] * 3


def per_image_file(path, hits, ais, clips=4, seeds=2, shape_hits=None):
    shape_hits = hits if shape_hits is None else shape_hits
    rows = [{"clip_id": f"c{k // seeds}", "seed": k % seeds, "label": "x", "predicted": "x" if h else "y",
             "predicted_shape": "x" if sh else "y", "AIS": a, "IIS": 0.5, "AIC": float(h), "SAC": float(sh)}
            for k, (h, a, sh) in enumerate(zip(hits, ais, shape_hits))]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_tables_show_intervals_and_mark_paired_differences(tmp_path):
    """A method against itself differs by exactly zero; one that wins every image is marked above SonicDiffusion;
    the intervals of the score files appear in the CSV and as `value [lo, hi]` in the Markdown."""
    bounds = {"AIS_lo": 0.4, "AIS_hi": 0.6, "AIC_lo": 0.25, "AIC_hi": 0.75, "IIS_lo": 0.5, "IIS_hi": 0.5,
              "SAC": 0.5, "SAC_lo": 0.2, "SAC_hi": 0.8, "SAC_real": 0.9}
    files = [score_file(tmp_path / "a.json", "ravdess", "SonicDiffusion", "full", **bounds),
             score_file(tmp_path / "b.json", "ravdess", "AudioToken", **bounds),
             score_file(tmp_path / "c.json", "ravdess", "GlueGen", **bounds)]
    ref = per_image_file(tmp_path / "a.csv", [1, 0, 1, 0, 1, 0, 1, 0], [0.4] * 8)
    same = per_image_file(tmp_path / "b.csv", [1, 0, 1, 0, 1, 0, 1, 0], [0.4] * 8)
    better = per_image_file(tmp_path / "c.csv", [1] * 8, [0.9] * 8, shape_hits=[0] * 8)  # AIC up, SAC down
    table = tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md",
                               per_image_files=[ref, same, better], samples=500)
    audiotoken, gluegen = table.iloc[1], table.iloc[2]
    assert audiotoken["AIC_diff"] == audiotoken["AIC_diff_lo"] == audiotoken["AIC_diff_hi"] == 0.0
    assert gluegen["AIC_diff"] == 0.5 and gluegen["AIC_diff_lo"] > 0 and gluegen["AIS_diff"] == pytest.approx(0.5)
    assert gluegen["SAC_diff"] == -0.5 and gluegen["SAC_diff_hi"] < 0 and audiotoken["SAC_diff"] == 0.0
    assert pd.isna(table.iloc[0]["AIC_diff"])  # the reference row
    csv = read_csv(tmp_path / "t.csv")
    assert {"AIS_lo", "AIC_hi", "IIS_diff_lo", "SAC_lo", "SAC_hi", "SAC_diff_lo", "SAC_real"} <= set(csv.columns)
    md = (tmp_path / "t.md").read_text()
    assert "| ravdess | SonicDiffusion | 0.500 [0.400, 0.600] | 0.500 [0.250, 0.750] | 0.500 [0.200, 0.800] |" in md
    assert "| ravdess | GlueGen | 0.500 [0.400, 0.600] ▲ | 0.500 [0.250, 0.750] ▲ | 0.500 [0.200, 0.800] ▼ |" in md
    assert "| ravdess | AudioToken | 0.500 [0.400, 0.600] | 0.500 [0.250, 0.750] | 0.500 [0.200, 0.800] |" in md
    assert "95 % bootstrap interval" in md and "difference to SonicDiffusion" in md
    assert "colour alone cannot meet it" in md and "SAC's ceiling: ravdess 0.900" in md
    with pytest.raises(ValueError, match="per-image files"):
        tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md", per_image_files=[ref])


def test_fid_shows_its_bootstrap_interval_without_a_mark(tmp_path):
    files = [score_file(tmp_path / "a.json", "ravdess", "SonicDiffusion", "full", FID=45.1, FID_lo=40.0, FID_hi=50.2,
                        AIC_lo=0.4, AIC_hi=0.6),
             score_file(tmp_path / "b.json", "ravdess", "GlueGen", FID=80.0, FID_lo=75.0, FID_hi=85.0)]
    tables.write_table(files, "table1", tmp_path / "t.csv", tmp_path / "t.md")
    assert read_csv(tmp_path / "t.csv")["FID_hi"].tolist() == [50.2, 85.0]
    md = (tmp_path / "t.md").read_text()
    assert "| 45.1 [40.0, 50.2] | 10 |" in md and "| 80.0 [75.0, 85.0] | 10 |" in md
    assert "bootstrap interval over the images" in md and "FID has no interval" not in md
