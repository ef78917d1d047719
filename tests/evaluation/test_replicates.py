"""The tables across training seeds (sonic.evaluation.replicates) on constructed score files and per-image CSVs."""

import json

import numpy as np
import pandas as pd
import pytest

from sonic.data.tables import read_csv
from sonic.evaluation.replicates import write_replicates

CLIPS = 20


def run(folder, dataset, method, seed, hits, fid, variant=None):
    """A score file and its per-image CSV: AIC (and AIS, SAC, IIS) from ``hits`` (one per clip, one image each)."""
    hits = np.asarray(hits, dtype=float)
    images = pd.DataFrame({"clip_id": [f"c{k}" for k in range(CLIPS)], "seed": 0, "label": "x",
                           "predicted": np.where(hits > 0, "x", "y"), "predicted_shape": "x", "AIS": hits,
                           "IIS": 0.5, "AIC": hits, "SAC": hits})
    stem = folder / f"{method}_{dataset}_{seed}"
    images.to_csv(f"{stem}.csv", index=False)
    score = {"dataset": dataset, "method": method, "variant": variant, "AIS": hits.mean(), "AIC": hits.mean(),
             "SAC": hits.mean(), "IIS": 0.5, "FID": fid, "FID_lo": fid - 2.0, "FID_hi": fid + 2.0, "images": CLIPS,
             "missing": 0}
    (stem.parent / f"{stem.name}.json").write_text(json.dumps(score))
    return f"{stem}.json", f"{stem}.csv"


def hits_of(count, offset=0):
    """``count`` hits among the clips, starting at clip ``offset``."""
    return [1.0 if (k - offset) % CLIPS < count else 0.0 for k in range(CLIPS)]


@pytest.fixture
def three_seeds(tmp_path):
    """SonicDiffusion hits 6 of 20 clips in every seed; AudioToken hits 6 more in every seed (AIC +0.30, FID 10
    lower); GlueGen hits 4 more in two seeds and 2 fewer in the third (a sign that flips; FID 1 higher, then 1 and 3
    lower)."""
    files = {"scores": [], "per_image": [], "seeds": []}
    for seed in (0, 1, 2):
        for method, hits, fid in [("SonicDiffusion", hits_of(6), 40.0 + seed),
                                  ("AudioToken", hits_of(12), 30.0 + seed),
                                  ("GlueGen", hits_of(10) if seed < 2 else hits_of(4), 41.0 - seed)]:
            score, images = run(tmp_path, "landscape", method, seed, hits, fid)
            files["scores"].append(score)
            files["per_image"].append(images)
            files["seeds"].append(seed)
    return files


def write(tmp_path, files, keep=lambda seed: True):
    chosen = [k for k, s in enumerate(files["seeds"]) if keep(s)]
    summary = write_replicates([files["scores"][k] for k in chosen], [files["per_image"][k] for k in chosen],
                               [files["seeds"][k] for k in chosen], "table1", tmp_path / "r.csv",
                               tmp_path / "s.csv", tmp_path / "r.md", "Table 1 across seeds", samples=500)
    return summary.set_index("method"), (tmp_path / "r.md").read_text()


def test_a_consistent_difference_is_marked_and_a_flipping_one_is_not(tmp_path, three_seeds):
    summary, md = write(tmp_path, three_seeds)
    per_seed = read_csv(tmp_path / "r.csv")
    assert per_seed[["method", "training_seed"]].values.tolist() == [
        [m, s] for m in ("SonicDiffusion", "AudioToken", "GlueGen") for s in (0, 1, 2)]  # one row per method and seed
    assert per_seed["AIC"].tolist()[:3] == [0.3, 0.3, 0.3] and "FID_hi" in per_seed
    audiotoken, gluegen = summary.loc["AudioToken"], summary.loc["GlueGen"]
    assert audiotoken["AIC_diff"] == pytest.approx(0.3) and audiotoken["AIC_signs"] == "+++"
    assert audiotoken["AIC_diff_lo"] > 0 and audiotoken["AIC_mark"] == "▲"
    assert audiotoken["FID_diff"] == pytest.approx(-10.0) and audiotoken["FID_mark"] == "▼"
    assert gluegen["AIC_signs"] == "++-" and gluegen["AIC_diff"] > 0 and gluegen["AIC_mark"] == ""
    assert gluegen["FID_signs"] == "+--" and gluegen["FID_mark"] == ""
    assert summary.loc["SonicDiffusion", "AIC_sd"] == 0.0 and pd.isna(summary.loc["SonicDiffusion", "AIC_diff"])
    assert gluegen["AIC_mean"] == pytest.approx((0.5 + 0.5 + 0.2) / 3)
    assert (gluegen["AIC_min"], gluegen["AIC_max"]) == (0.2, 0.5)
    assert "| landscape | AudioToken | 3 | " in md and "0.600 ± 0.000 (0.600–0.600) ▲" in md
    assert "deviation (range).\n\n▲ / ▼" in md  # each note its own Markdown paragraph
    assert "| landscape | GlueGen | +0.100 [" in md and "++-" in md
    assert "every seed *and*" in md


def test_one_seed_gives_no_mark(tmp_path, three_seeds):
    summary, md = write(tmp_path, three_seeds, keep=lambda seed: seed == 0)
    assert (summary["seeds"] == 1).all() and summary["AIC_sd"].isna().all()
    assert summary.loc["AudioToken", "AIC_diff"] == pytest.approx(0.3)
    assert summary.loc["AudioToken", "AIC_mark"] == ""
    assert pd.isna(summary.loc["AudioToken", "AIC_diff_lo"])
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert not [line for line in rows if "▲" in line or "▼" in line]


def test_a_reference_without_every_seed_is_an_error(tmp_path, three_seeds):
    drop = three_seeds["scores"].index(next(f for f in three_seeds["scores"] if "SonicDiffusion_landscape_2" in f))
    files = {k: [v for i, v in enumerate(vs) if i != drop] for k, vs in three_seeds.items()}
    with pytest.raises(ValueError, match=r"AudioToken on landscape has training seeds \[0, 1, 2\], SonicDiffusion"):
        write(tmp_path, files)


def test_the_command_writes_the_three_outputs(tmp_path, three_seeds):
    """`sonic evaluate replicates` (what the workflow's rule runs): no config, no --threads."""
    from sonic.cli import main

    outs = [tmp_path / "c.csv", tmp_path / "s.csv", tmp_path / "c.md"]
    assert main(["evaluate", "replicates", "table1", "--scores", *three_seeds["scores"], "--per-image",
                 *three_seeds["per_image"], "--training-seeds", *map(str, three_seeds["seeds"]),
                 "--bootstrap-samples", "200", "--out", str(outs[0]), "--summary", str(outs[1]), "--markdown",
                 str(outs[2])]) == 0
    assert len(read_csv(outs[0])) == 9 and len(read_csv(outs[1])) == 3
    assert "| landscape | AudioToken |" in outs[2].read_text()
