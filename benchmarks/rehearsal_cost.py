"""Cost of the paper run, from a rehearsal's benchmark files (docs/rehearsal.md#cost).

Reads every ``<results>/benchmarks/**/*.tsv`` that Snakemake wrote for the rehearsal run
(``workflow/configs/rehearsal.yaml``), names each by its rule from the run's Snakemake log, and prints per rule:
jobs, wall time, peak RSS, and the projected wall time of the same rule in the paper run on this machine.

The projection scales each rehearsal job by the work the paper's settings give that job, read from the two configs:

* training (stage 1, stage 2, competitors): start-up (the job's time outside its training loop, from the run's
  ``summary.json``) + seconds per step x paper steps x (paper batch / rehearsal batch);
* generation and scoring: x (paper images / rehearsal images) x (paper DDIM steps / rehearsal steps) for generation;
  paper images = ``eval_audios_per_class`` x the dataset's classes x ``evaluation.seeds``;
* editing: x (paper edits x steps) / (rehearsal edits x steps), an edit run making one image per source and
  evaluation audio (paper edits = ``editing.num_sources`` x ``eval_audios_per_class`` x the dataset's classes;
  rehearsal edits: the run's images); inversion x (paper sources x steps) / (rehearsal sources x steps); edit
  scoring x edits; Fig. 10 and the gate norms (``edit_figures``, a fixed number of edits) x editing steps;
* data preparation, captions and CLAP features: x (the paper's pairs / the rehearsal's clips) per dataset
  (pairs from the paper: Greatest Hits 3,385, Landscape + Into the Wild 22,000, RAVDESS 1,012 song videos);
* tables and the other figures: as measured; ``synth`` and ``rehearsal_models`` are not part of the paper run.

Ablation jobs are counted once per dataset of the paper's ``evaluation.ablation_datasets``. Start-up is scaled with
the work where it cannot be measured apart (generation, scoring, editing, data), so those rows are upper bounds.
Everything is on this CPU; no GPU figures are projected (``benchmarks/gpu_paper.py`` measures those on a GPU).

    python benchmarks/rehearsal_cost.py [--results results] [--log .snakemake/log/<run>.snakemake.log]
        [--rehearsal workflow/configs/rehearsal.yaml] [--paper workflow/configs/paper.yaml] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_PAIRS = {"greatest_hits": 3385, "landscape": 22000, "ravdess": 1012}
PAPER_CLASSES = {"greatest_hits": 17, "landscape": 9, "ravdess": 6}
TRAINING_RULES = {"train_stage1", "train_stage2", "train_competitor"}
PER_PAIR_RULES = {"synth", "index_dataset", "extract_shard", "manifest", "captions", "clap_features",
                  "release_features", "eval_references"}
GENERATION_RULES = {"generate_eval"}
SCORING_RULES = {"score", "score_table1"}
REHEARSAL_ONLY = {"synth", "rehearsal_models"}  # the paper run reads real data and weights instead
EDIT_RULES = {"edit_run", "invert_sources", "score_edit", "score_edit_release"}
FIGURE_RULES = {"edit_figures"}  # Fig. 10 + gate norms: a fixed number of edits, each at editing.steps


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path) -> dict:
    """A profile as Snakemake sees it: config.yaml, then the profile on top."""
    return deep_merge(yaml.safe_load((ROOT / "config.yaml").read_text()), yaml.safe_load(path.read_text()))


def rules_of_benchmarks(log: Path) -> dict[str, str]:
    """benchmark file -> rule, from a Snakemake run log (each job block names its rule, then its benchmark)."""
    out, rule = {}, None
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line)
        if m:
            rule = m.group(1)
        m = re.match(r"^\s+benchmark: (\S+)", line)
        if m and rule:
            out[m.group(1)] = rule
    return out


def read_benchmark(path: Path) -> dict:
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {"s": float(rows[-1]["s"]), "max_rss_mb": float(rows[-1]["max_rss"]) if rows[-1]["max_rss"] != "NA" else 0.0}


def dataset_of(name: str, datasets) -> str | None:
    return next((d for d in sorted(datasets, key=len, reverse=True) if d in name), None)


def setting(cfg: dict, dotted: str, default=None):
    for key in dotted.split("."):
        if not isinstance(cfg, dict) or key not in cfg:
            return default
        cfg = cfg[key]
    return cfg


def training_factor(name: str, rehearsal: dict, paper: dict) -> tuple[str, float]:
    """(settings section, steps x batch ratio) of a training job from its benchmark file name."""
    if "_stage1_" in name:
        section = "training.stage1"
    elif "_stage2_" in name:
        section = "training.stage2"
    else:
        key = "audiotoken" if "AudioToken" in name else "gluegen"
        section = f"competitors.{key}"
    r = (setting(rehearsal, f"{section}.steps"), setting(rehearsal, f"{section}.batch_size"))
    p = (setting(paper, f"{section}.steps"), setting(paper, f"{section}.batch_size"))
    return section, (p[0] * p[1]) / (r[0] * r[1])


def summary_of(results: Path, name: str) -> dict | None:
    """The training run's summary.json for a benchmark file name ``<dataset>_<...>``."""
    stem = Path(name).stem
    m = re.match(r"(.+?)_stage1_(.+)$", stem)
    candidates = []
    if m:
        candidates.append(results / "train" / m.group(1) / "stage1" / m.group(2) / "summary.json")
    m = re.match(r"(.+?)_stage2_(.+)$", stem)
    if m:
        candidates.append(results / "train" / m.group(1) / m.group(2) / "summary.json")
    m = re.match(r"(.+?)_(AudioToken|GlueGen)$", stem)
    if m:
        candidates.append(results / "train" / m.group(1) / m.group(2) / "summary.json")
    for c in candidates:
        if c.is_file():
            return json.loads(c.read_text())
    return None


def images_per_run(root: Path, dataset: str) -> float:
    """The mean number of images of the runs ``<root>/<method>/<dataset>/`` (at least 1)."""
    runs = [d for d in root.glob(f"*/{dataset}") if d.is_dir()]
    images = sum(len(list(d.glob("*.png"))) for d in runs)
    return max(1.0, images / max(1, len(runs)))


def count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path) as f:
        return max(0, sum(1 for _ in f) - 1)


def is_ablation(name: str) -> bool:
    stem = Path(name).stem
    variant = re.search(r"(?:stage[12]_|SonicDiffusion-)(\w+?)(?:_|$)", stem)
    return bool(variant and variant.group(1) != "full") or "ablation" in stem


def project(rule: str, bench: str, measured: dict, results: Path, rehearsal: dict, paper: dict) -> float:
    """Projected paper seconds of one rehearsal job (see the module docstring)."""
    s, name = measured["s"], Path(bench).name
    if rule in REHEARSAL_ONLY:
        return 0.0
    datasets = setting(rehearsal, "data.datasets", {})
    dataset = dataset_of(name, datasets)
    if rule in TRAINING_RULES:
        _, factor = training_factor(name, rehearsal, paper)
        summary = summary_of(results, name) or {}
        loop_s = float(summary.get("wall_seconds") or 0.0)
        return max(0.0, s - loop_s) + loop_s * factor
    paper_audios = setting(paper, "data.eval_audios_per_class") * PAPER_CLASSES.get(dataset, 1)
    if rule in GENERATION_RULES | SCORING_RULES and dataset:
        factor = paper_audios * setting(paper, "evaluation.seeds") / images_per_run(results / "generated", dataset)
        if rule in GENERATION_RULES:
            factor *= setting(paper, "evaluation.steps") / setting(rehearsal, "evaluation.steps")
        return s * factor
    steps = setting(paper, "editing.steps") / setting(rehearsal, "editing.steps")
    if rule in FIGURE_RULES:
        return s * steps
    if rule in EDIT_RULES and dataset:
        sources = setting(paper, "editing.num_sources") / setting(rehearsal, "editing.num_sources")
        if rule == "invert_sources":
            return s * sources * steps
        edits = setting(paper, "editing.num_sources") * paper_audios / images_per_run(results / "edited", dataset)
        return s * edits * (steps if rule == "edit_run" else 1.0)
    if rule in PER_PAIR_RULES and dataset:
        clips = count_rows(results / "data" / dataset / "manifest.csv")
        return s * PAPER_PAIRS[dataset] / max(1, clips)
    return s


def hms(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def cost_table(results: Path, log: Path, rehearsal_cfg: Path, paper_cfg: Path) -> list[dict]:
    rehearsal, paper = load_config(rehearsal_cfg), load_config(paper_cfg)
    ablation_copies = len(setting(paper, "evaluation.ablation_datasets", [])) / max(
        1, len(setting(rehearsal, "evaluation.ablation_datasets", [])))
    named = rules_of_benchmarks(log)
    per_rule = defaultdict(lambda: {"jobs": 0, "s": 0.0, "max_rss_mb": 0.0, "paper_s": 0.0})
    root = results.parent
    for path in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        rule = named.get(rel) or named.get(str(path)) or path.parent.name
        measured = read_benchmark(path)
        row = per_rule[rule]
        row["jobs"] += 1
        row["s"] += measured["s"]
        row["max_rss_mb"] = max(row["max_rss_mb"], measured["max_rss_mb"])
        copies = ablation_copies if is_ablation(path.name) else 1.0
        row["paper_s"] += copies * project(rule, rel, measured, results, rehearsal, paper)
    rows = [{"rule": r, **v} for r, v in per_rule.items()]
    return sorted(rows, key=lambda r: -r["paper_s"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default="results")
    ap.add_argument("--log", help="the run's Snakemake log (default: the newest in .snakemake/log/)")
    ap.add_argument("--rehearsal", default=str(ROOT / "workflow/configs/rehearsal.yaml"))
    ap.add_argument("--paper", default=str(ROOT / "workflow/configs/paper.yaml"))
    ap.add_argument("--markdown", action="store_true", help="a Markdown table (docs/rehearsal.md's)")
    args = ap.parse_args(argv)
    results = Path(args.results)
    log = Path(args.log) if args.log else max((results.parent / ".snakemake" / "log").glob("*.snakemake.log"),
                                              key=lambda p: p.stat().st_mtime, default=None)
    if log is None or not log.is_file():
        print(f"no Snakemake log found (pass --log); looked in {results.parent / '.snakemake' / 'log'}",
              file=sys.stderr)
        return 2
    rows = cost_table(results, log, Path(args.rehearsal), Path(args.paper))
    total = {k: sum(r[k] for r in rows) for k in ("jobs", "s", "paper_s")}
    peak = max((r["max_rss_mb"] for r in rows), default=0.0)
    if args.markdown:
        print("| rule | jobs | rehearsal wall | peak RSS | paper run, this CPU (projected) |")
        print("|---|---:|---:|---:|---:|")
        for r in rows:
            paper = "— (rehearsal only)" if r["rule"] in REHEARSAL_ONLY else hms(r["paper_s"])
            print(f"| `{r['rule']}` | {r['jobs']} | {hms(r['s'])} | {r['max_rss_mb'] / 1024:.1f} GiB | {paper} |")
        print(f"| **total** | {total['jobs']} | {hms(total['s'])} | {peak / 1024:.1f} GiB | {hms(total['paper_s'])} |")
    else:
        for r in rows:
            print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()}))
        print(json.dumps({"total_jobs": total["jobs"], "rehearsal_s": round(total["s"], 1),
                          "peak_rss_gib": round(peak / 1024, 2), "paper_s": round(total["paper_s"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
