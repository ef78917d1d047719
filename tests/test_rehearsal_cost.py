"""benchmarks/rehearsal_cost.py on a constructed rehearsal: each rule's projection is the known product of its
measured time and the work ratio the two configs give it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("rehearsal_cost", ROOT / "benchmarks" / "rehearsal_cost.py")
cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cost)

REHEARSAL = ROOT / "workflow" / "configs" / "rehearsal.yaml"
PAPER = ROOT / "workflow" / "configs" / "paper.yaml"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
JOBS = {  # rule -> (benchmark file under results/benchmarks, seconds)
    "rehearsal_models": ("pretrain/rehearsal_models.tsv", 100.0),
    "captions": ("features/landscape_captions.tsv", 60.0),
    "train_stage2": ("train/landscape_stage2_full.tsv", 90.0),
    "train_competitor": ("train/landscape_AudioToken.tsv", 70.0),
    "generate_eval": ("generated/SonicDiffusion_landscape.tsv", 80.0),
    "edit_run": ("edited/SonicDiffusion_landscape.tsv", 120.0),
    "invert_sources": ("edited/inversions_landscape.tsv", 30.0),
    "edit_figures": ("figures/edit_landscape.tsv", 500.0),
    "table1": ("table1.tsv", 5.0),
}


@pytest.fixture
def run(tmp_path):
    results = tmp_path / "results"
    log = tmp_path / "run.snakemake.log"
    lines = []
    for rule, (name, seconds) in JOBS.items():
        path = results / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:01:00\t{1024 * seconds}\t0\t0\t0\t0\t0\t0\t0\n")
        lines += [f"rule {rule}:", "    input: x", f"    benchmark: results/benchmarks/{name}", ""]
    log.write_text("\n".join(lines))
    for job, loop_s in (("full", 80.0), ("AudioToken", 60.0)):
        summary = results / "train" / "landscape" / job / "summary.json"
        summary.parent.mkdir(parents=True)
        summary.write_text(json.dumps({"wall_seconds": loop_s}))
    for kind, count in (("generated", 2), ("edited", 4)):
        folder = results / kind / "SonicDiffusion" / "landscape"
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"{i}.png").write_bytes(b"")
    manifest = results / "data" / "landscape" / "manifest.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("clip_id\n" + "".join(f"c{i}\n" for i in range(4)))
    return results, log


def test_each_rule_is_projected_by_its_work_ratio(run):
    results, log = run
    r, p = cost.load_config(REHEARSAL), cost.load_config(PAPER)
    get = cost.setting
    rows = {row["rule"]: row for row in cost.cost_table(results, log, REHEARSAL, PAPER)}
    assert {k: row["jobs"] for k, row in rows.items()} == {k: 1 for k in JOBS}
    audios = get(p, "data.eval_audios_per_class") * cost.PAPER_CLASSES["landscape"]
    edit_steps = get(p, "editing.steps") / get(r, "editing.steps")

    def train(section, s, loop):
        ratio = get(p, f"{section}.steps") * get(p, f"{section}.batch_size") / (
            get(r, f"{section}.steps") * get(r, f"{section}.batch_size"))
        return s - loop + loop * ratio

    expected = {
        "rehearsal_models": 0.0,
        "captions": 60.0 * cost.PAPER_PAIRS["landscape"] / 4,
        "train_stage2": train("training.stage2", 90.0, 80.0),
        "train_competitor": train("competitors.audiotoken", 70.0, 60.0),
        "generate_eval": 80.0 * audios * get(p, "evaluation.seeds") / 2
        * get(p, "evaluation.steps") / get(r, "evaluation.steps"),
        "edit_run": 120.0 * get(p, "editing.num_sources") * audios / 4 * edit_steps,
        "invert_sources": 30.0 * get(p, "editing.num_sources") / get(r, "editing.num_sources") * edit_steps,
        "edit_figures": 500.0 * edit_steps,
        "table1": 5.0,
    }
    for rule, value in expected.items():
        assert rows[rule]["paper_s"] == pytest.approx(value), rule
        assert rows[rule]["max_rss_mb"] == pytest.approx(1024 * JOBS[rule][1])
    # AudioToken: the paper's batch 16 against the rehearsal's 4 -> four rehearsal steps per paper step
    assert get(p, "competitors.audiotoken.batch_size") / get(r, "competitors.audiotoken.batch_size") == 4


def test_markdown_table_has_every_rule_and_the_total(run, capsys):
    results, log = run
    assert cost.main(["--results", str(results), "--log", str(log), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert all(f"| `{rule}` | 1 |" in out for rule in JOBS)
    assert "— (rehearsal only)" in out and out.strip().splitlines()[-1].startswith("| **total** | 9 |")
