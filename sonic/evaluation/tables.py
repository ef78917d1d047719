"""The paper's tables from per-run score files (README, What is here): Table 1 (generation: dataset x method), Tables
3, 4 and
supplementary Table 1 (ablations: dataset x variant), Table 2 (editing), as CSV and Markdown.

Each score file is the JSON written by :func:`sonic.evaluation.score.score_run` (dataset, method, variant, AIS,
AIC, IIS, FID, images, missing). The Markdown version puts the paper's number beside each of ours when the
paper's table is given (the paper profile); the paper's tables ship in ``workflow/paper/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sonic.data.tables import read_csv, write_csv

METRICS = ["AIS", "AIC", "IIS", "FID"]
EDIT_COLUMNS = ["source_similarity", "other_source_similarity", "edge_ssim", "other_edge_ssim", "source_AIC"]
PAPER_DATASET = {"landscape": "landscape_itw"}  # our dataset key -> the paper tables' name

# kind -> (row key, paper file, the row names the paper uses for our variants)
TABLES = {
    "table1": ("method", "table1_generation.csv", {}),
    "table2": ("method", "table2_editing.csv", {}),
    "table3": ("variant", "table3_loss_ablation.csv", {}),
    "table4": ("variant", "table4_training_choices.csv", {}),
    "tableS1": ("variant", "tableS1_injection.csv", {"full": "mid_and_decoder"}),
}



def collect(score_files: list[str | Path], kind: str) -> pd.DataFrame:
    """One row per score file: dataset, the row key (method or variant), the metrics, images, missing."""
    key, _, rename = TABLES[kind]
    rows = []
    for f in score_files:
        s = json.loads(Path(f).read_text())
        name = s.get(key) or s["method"]
        extra = {k: s[k] for k in EDIT_COLUMNS if k in s}  # editing runs: structure preservation
        rows.append({"dataset": s["dataset"], key: rename.get(name, name), **{m: s[m] for m in METRICS},
                     "images": s["images"], "missing": s.get("missing", 0), **extra})
    if not rows:
        raise ValueError(f"{kind}: no score files")
    table = pd.DataFrame(rows)
    duplicated = table.duplicated(["dataset", key])
    if duplicated.any():
        raise ValueError(f"{kind}: more than one score for {table[duplicated][['dataset', key]].values.tolist()}")
    return table


def paper_table(kind: str, folder: str | Path) -> pd.DataFrame:
    _, name, _ = TABLES[kind]
    return read_csv(Path(folder) / name)


def _cell(value, paper_value, metric: str) -> str:
    ours = "–" if pd.isna(value) else (f"{value:.1f}" if metric == "FID" else f"{value:.4f}")
    if paper_value is None:
        return ours
    theirs = "–" if pd.isna(paper_value) else (f"{paper_value:.1f}" if metric == "FID" else f"{paper_value:.4f}")
    return f"{ours} ({theirs})"


def markdown(table: pd.DataFrame, kind: str, paper: pd.DataFrame | None = None, title: str = "") -> str:
    """A Markdown table; with ``paper``, each cell reads ``ours (paper)`` and a row absent from the paper shows
    ``(–)``."""
    key = TABLES[kind][0]
    lookup = {}
    if paper is not None:
        for row in paper.to_dict("records"):
            lookup[(row["dataset"], row[key])] = row
    extra = [c for c in EDIT_COLUMNS if c in table.columns]
    header = ["dataset", key] + METRICS + ["images"] + extra
    lines = [f"### {title}" if title else "", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        ref = lookup.get((PAPER_DATASET.get(row["dataset"], row["dataset"]), row[key])) if paper is not None else None
        cells = [_cell(row[m], None if paper is None else (ref or {}).get(m, float("nan")), m) for m in METRICS]
        images = f"{row['images']}" + (f" ({row['missing']} missing)" if row.get("missing") else "")
        more = ["–" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in extra]
        lines.append("| " + " | ".join([row["dataset"], row[key], *cells, images, *more]) + " |")
    if paper is not None:
        lines += ["", "Cells: ours (paper). The paper's numbers are from its tables (`workflow/paper/`)."]
    return "\n".join(lines).lstrip() + "\n"


def write_table(score_files: list[str | Path], kind: str, out_csv: str | Path, out_md: str | Path,
                paper_folder: str | Path | None = None, title: str = "") -> pd.DataFrame:
    """Collect the scores, sort (dataset, then the given file order) and write CSV and Markdown."""
    table = collect(score_files, kind)
    table["_order"] = range(len(table))
    table = table.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)
    write_csv(table, out_csv)
    paper = paper_table(kind, paper_folder) if paper_folder else None
    Path(out_md).write_text(markdown(table, kind, paper, title))
    return table
