"""The paper's tables from per-run score files: Table 1 (generation: dataset x method), Tables 3, 4 and
supplementary Table 1 (ablations: dataset x variant), Table 2 (editing), as CSV and Markdown.

Each score file is the JSON written by :func:`sonic.evaluation.score.score_run` (dataset, method, variant, AIS,
AIC, SAC, IIS, FID, their bootstrap intervals (FID's over images, unpaired), SAC's ceiling on the real frames, images,
missing, where the images were made). With the per-image CSVs, each row is compared with its dataset's reference
row (SonicDiffusion; ablations: ``full``) by a paired bootstrap (:func:`paired_differences`). The Markdown version
puts the paper's number beside each of ours when the paper's table is given (the paper profile); the paper's tables
ship in ``workflow/paper/``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sonic.data.tables import read_csv, write_csv
from sonic.errors import InputError, read_json
from sonic.machine import summary
from sonic.methods import LABEL_CONDITIONED, RELEASE, label
from sonic.metrics.bootstrap import PER_IMAGE_METRICS as PER_IMAGE

METRICS = ["AIS", "AIC", "SAC", "IIS", "FID"]
NEWER = {"SAC"}  # metrics that score files written before them lack (their cells read "–")
REFERENCE = {"method": "SonicDiffusion", "variant": "full"}  # what the other rows are compared with
EDIT_COLUMNS = ["source_similarity", "other_source_similarity", "edge_ssim", "other_edge_ssim", "source_AIC",
                "source_SAC"]
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
        s = read_json(f, "score file")
        missing = [k for k in ("dataset", "images") if k not in s] + ([] if key in s or "method" in s else [key])
        if missing:
            raise InputError(f"{f}: not a score file of `sonic evaluate score` (no {', '.join(missing)})")
        name = s.get(key) or s["method"]
        extra = {k: s[k] for k in EDIT_COLUMNS if k in s}  # editing runs: structure preservation
        bounds = {f"{m}_{b}": s[f"{m}_{b}"] for m in METRICS for b in ("lo", "hi") if f"{m}_{b}" in s}
        made_on = s.get("generated_on")
        metrics = {m: s.get(m) if m in NEWER else s[m] for m in METRICS}
        rows.append({"dataset": s["dataset"], key: rename.get(name, name), **metrics, **bounds,
                     "SAC_real": s.get("SAC_real"), "images": s["images"], "missing": s.get("missing", 0),
                     "labelled": s.get("labelled", True), **extra,
                     **({"generated_on": summary(made_on)} if made_on else {})})
    if not rows:
        raise ValueError(f"{kind}: no score files")
    table = pd.DataFrame(rows)
    duplicated = table.duplicated(["dataset", key])
    if duplicated.any():
        raise ValueError(f"{kind}: more than one score for {table[duplicated][['dataset', key]].values.tolist()}")
    return table


def paired_differences(table: pd.DataFrame, per_image_files: list[str | Path], kind: str, samples: int = 2000,
                       level: float = 0.95) -> pd.DataFrame:
    """``table`` (one row per score file, in the files' order) with ``<metric>_diff``, ``_diff_lo`` and
    ``_diff_hi``: each row against its dataset's reference row (SonicDiffusion; the ablations: ``full``) on the
    images both scored (same clip and seed), a paired cluster bootstrap over the clips. The reference rows and rows
    without a reference get NaN."""
    from sonic.metrics.bootstrap import paired_difference

    key, _, rename = TABLES[kind]
    reference = rename.get(REFERENCE[key], REFERENCE[key])
    if len(per_image_files) != len(table):
        raise ValueError(f"{kind}: {len(per_image_files)} per-image files for {len(table)} score files")
    images = [read_csv(f).astype({"clip_id": str}) for f in per_image_files]
    out = table.copy()
    for m in PER_IMAGE:
        for suffix in ("diff", "diff_lo", "diff_hi"):
            out[f"{m}_{suffix}"] = float("nan")
    for i, row in table.iterrows():
        ref = table.index[(table["dataset"] == row["dataset"]) & (table[key] == reference)]
        if row[key] == reference or not len(ref):
            continue
        pair = images[i].merge(images[ref[0]], on=["clip_id", "seed"], suffixes=("", "_ref"))
        if pair.empty:
            raise ValueError(f"{kind}: {row[key]} and {reference} on {row['dataset']} share no image")
        for m in PER_IMAGE:
            if f"{m}_ref" not in pair or pair[[m, f"{m}_ref"]].isna().to_numpy().any():
                continue  # not measured on both (SAC without a shape classifier, or per-image files before SAC)
            d = paired_difference(pair[m].to_numpy(), pair[f"{m}_ref"].to_numpy(), pair["clip_id"].tolist(),
                                  samples, level)
            out.loc[i, [f"{m}_diff", f"{m}_diff_lo", f"{m}_diff_hi"]] = [d.value, d.lo, d.hi]
    return out


def paper_table(kind: str, folder: str | Path) -> pd.DataFrame:
    _, name, _ = TABLES[kind]
    return read_csv(Path(folder) / name)


def _mark(row: dict, metric: str) -> str:
    """▲ / ▼ where the paired interval of the difference to the reference lies above / below zero."""
    lo, hi = row.get(f"{metric}_diff_lo"), row.get(f"{metric}_diff_hi")
    if lo is None or pd.isna(lo):
        return ""
    return " ▲" if lo > 0 else (" ▼" if hi < 0 else "")


def _ours(row: dict, metric: str) -> str:
    value = row[metric]
    if pd.isna(value):
        return "–"
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    if metric == "FID":
        return f"{value:.1f}" if lo is None or pd.isna(lo) else f"{value:.1f} [{lo:.1f}, {hi:.1f}]"
    if lo is None or pd.isna(lo):
        return f"{value:.4f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]{_mark(row, metric)}"


def _cell(row: dict, paper_value, metric: str) -> str:
    ours = _ours(row, metric)
    if paper_value is None:
        return ours
    theirs = "–" if pd.isna(paper_value) else (f"{paper_value:.1f}" if metric == "FID" else f"{paper_value:.4f}")
    return f"{ours} ({theirs})"


def markdown(table: pd.DataFrame, kind: str, paper: pd.DataFrame | None = None, title: str = "",
             interval_level: float = 0.95) -> str:
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
        cells = [_cell(row, None if paper is None else (ref or {}).get(m, float("nan")), m) for m in METRICS]
        images = f"{row['images']}" + (f" ({row['missing']} missing)" if row.get("missing") else "")
        more = ["–" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in extra]
        lines.append("| " + " | ".join([row["dataset"], label(row[key]), *cells, images, *more]) + " |")
    notes = []
    level = f"{round(100 * interval_level)} %"
    if any(f"{m}_lo" in table.columns for m in PER_IMAGE):
        notes.append(f"AIS, AIC, SAC, IIS: value [{level} bootstrap interval over the evaluation clips, a clip's "
                     "images together].")
        if "FID_lo" not in table.columns or table["FID_lo"].isna().all():
            notes.append("FID has no interval; it is computed on the images counted in `images`.")
    if "FID_lo" in table.columns and table["FID_lo"].notna().any():
        notes.append(f"FID: value [{level} bootstrap interval over the images (the generated ones by clip, the real "
                     "frames one by one): its scatter at the image counts of `images`, not an interval for the FID of "
                     "unlimited images, which a finite set overestimates]; unpaired, so without ▲ / ▼.")
    if "SAC" in table.columns and table["SAC"].notna().any():
        real = table.drop_duplicates("dataset").reindex(columns=["dataset", "SAC_real"]).dropna()
        ceiling = ", ".join(f"{d} {v:.3f}" for d, v in zip(real["dataset"], real["SAC_real"]))
        notes.append("SAC: the share of images that a colour-blind classifier of the edge layout (luminance HOG, "
                     "fitted on the dataset's training frames) assigns to their audio's class; colour alone cannot "
                     "meet it (docs/evaluation.md)." + (f" Its accuracy on the real validation frames, SAC's "
                                                        f"ceiling: {ceiling}." if ceiling else ""))
    if any(f"{m}_diff" in table.columns for m in PER_IMAGE):
        notes.append(f"▲ / ▼: the paired {round(100 * interval_level)} % interval of the difference to "
                     f"{REFERENCE[key]} (same clips and seeds) lies above / below zero.")
    if "generated_on" in table.columns:
        machines = sorted(set(table["generated_on"].dropna()))
        notes.append("Images made on " + "; ".join(machines) + " (floats of CPU runs differ between processor types "
                     "and torch builds: the same seed reproduces these numbers on the same kind of machine).")
    if "labelled" in table.columns and not table["labelled"].astype(bool).all():
        unlabelled = sorted(set(table.loc[~table["labelled"].astype(bool), "dataset"]))
        left_out = (f", and {' and '.join(LABEL_CONDITIONED)} (trained on prompts made of the clip's label) is left "
                    "out") if kind == "table1" else ""
        notes.append(f"{', '.join(unlabelled)}: no labels (the videos sit directly under the dataset's root): AIC and "
                     f"SAC are not scored, as there is no class to ask for{left_out}; AIS, IIS and FID need no label.")
    if RELEASE in set(table[key]):
        notes.append(f"{label(RELEASE)}: the authors' released weights, imported (`sonic import-release`) and run "
                     "here with their Microsoft CLAP 2022 encoder, on the same clips and seeds.")
    if paper is not None:
        notes.append("Cells: ours (paper). The paper's numbers are from its tables (`workflow/paper/`).")
    if notes:
        lines += [""] + notes
    return "\n".join(lines).lstrip() + "\n"


def write_table(score_files: list[str | Path], kind: str, out_csv: str | Path, out_md: str | Path,
                paper_folder: str | Path | None = None, title: str = "",
                per_image_files: list[str | Path] | None = None, samples: int = 2000,
                level: float = 0.95) -> pd.DataFrame:
    """Collect the scores, compare each row with its dataset's reference row (with ``per_image_files``, one per
    score file), sort (dataset, then the given file order) and write CSV and Markdown."""
    table = collect(score_files, kind)
    if per_image_files:
        table = paired_differences(table, per_image_files, kind, samples, level)
    table["_order"] = range(len(table))
    table = table.sort_values(["dataset", "_order"]).drop(columns="_order").reset_index(drop=True)
    write_csv(table, out_csv)
    paper = paper_table(kind, paper_folder) if paper_folder else None
    Path(out_md).write_text(markdown(table, kind, paper, title, level))
    return table
