"""The tables across training seeds (docs/evaluation.md#replicates; ``rules/replicates.smk``): Table 1's
trained methods, or an ablation table's variants, each trained with several training seeds and scored as in the
single run, compared seed by seed with the reference row (SonicDiffusion; the ablations: ``full``) of the same seed
(:mod:`sonic.metrics.replicates`: the test and why).

Three outputs: a CSV with one row per dataset, method (ablations: variant) and training seed, the columns of the
single-run tables (:func:`sonic.evaluation.tables.collect`) plus ``training_seed``; a summary CSV with one row per
dataset and method: per metric the mean over seeds, the between-seed standard deviation, the range and, against the
reference, the mean difference, its interval, the signs of the seeds' differences and the mark; and Markdown.

``v``, the evaluation clips' share of the error of a mean difference, comes from the per-image CSVs for AIS, AIC, SAC
and IIS (:func:`sonic.metrics.replicates.clip_variance`). FID has no per-image values: its ``v`` is the mean over
seeds of the two runs' bootstrap variances (:func:`sonic.metrics.bootstrap.fid_bootstrap`), as if the clips' error
were shared fully by the seeds and not at all by the two methods, both of which overstate it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sonic.data.tables import read_csv, write_csv
from sonic.evaluation.tables import METRICS, REFERENCE, TABLES, collect
from sonic.methods import label
from sonic.metrics.bootstrap import PER_IMAGE_METRICS
from sonic.metrics.replicates import clip_variance, compare_across_seeds, interval_variance

SEED = "training_seed"


def collect_seeds(score_files: list[str | Path], seeds: list[int], kind: str) -> pd.DataFrame:
    """One row per score file (``seeds[i]``: the training seed of ``score_files[i]``), in the files' order, the
    columns of :func:`sonic.evaluation.tables.collect` with ``training_seed`` after the row key."""
    if len(seeds) != len(score_files):
        raise ValueError(f"{kind}: {len(seeds)} training seeds for {len(score_files)} score files")
    key = TABLES[kind][0]
    table = pd.concat([collect([f], kind).assign(**{SEED: int(s)}) for f, s in zip(score_files, seeds)],
                      ignore_index=True)
    duplicated = table.duplicated(["dataset", key, SEED])
    if duplicated.any():
        twice = table[duplicated][["dataset", key, SEED]].values.tolist()
        raise ValueError(f"{kind}: more than one score for {twice}")
    return table[["dataset", key, SEED] + [c for c in table.columns if c not in ("dataset", key, SEED)]]


def _ordered(table: pd.DataFrame, key: str, *by: str) -> pd.DataFrame:
    """Sorted by dataset, then the rows' names in the order they first appear (the given method order), then
    ``by``."""
    order = {name: i for i, name in enumerate(dict.fromkeys(table[key]))}
    return table.sort_values(["dataset", key, *by], key=lambda c: c.map(order) if c.name == key else c,
                             kind="stable").reset_index(drop=True)


def _paired_images(per_image: dict, dataset: str, name: str, reference: str, seeds: list[int], metric: str
                   ) -> tuple[list[np.ndarray], list[str]] | None:
    """Per seed, the method's per-image ``metric`` minus the reference's on the images both scored in every seed
    (same clip and evaluation seed), and their clips; None where a value is missing."""
    diffs = []
    for seed in seeds:
        a, b = per_image[(dataset, name, seed)], per_image[(dataset, reference, seed)]
        if metric not in a or metric not in b:
            return None
        pair = a.merge(b, on=["clip_id", "seed"], suffixes=("", "_ref"))
        images = pd.MultiIndex.from_frame(pair[["clip_id", "seed"]])
        diffs.append((pair[metric] - pair[f"{metric}_ref"]).set_axis(images))
    joined = pd.concat(diffs, axis=1, join="inner")  # (images scored in every seed, seeds)
    if joined.empty:
        raise ValueError(f"{name} and {reference} on {dataset} share no image in every training seed")
    if joined.isna().to_numpy().any():
        return None
    return [joined[k].to_numpy() for k in joined.columns], [str(c) for c in joined.index.get_level_values(0)]


def summarise(table: pd.DataFrame, per_image_files: list[str | Path], kind: str, samples: int = 2000,
              level: float = 0.95) -> pd.DataFrame:
    """One row per dataset and method of :func:`collect_seeds`'s ``table`` (``per_image_files[i]``: the per-image
    CSV of its row i): per metric ``<m>_mean``, ``_sd`` (between seeds, NaN for one seed), ``_min``, ``_max`` and,
    for every row but the reference, ``<m>_diff`` (mean over seeds of the difference to the reference of the same
    seed), ``_diff_lo``, ``_diff_hi``, ``_signs`` and ``_mark``
    (:func:`sonic.metrics.replicates.compare_across_seeds`)."""
    key, _, rename = TABLES[kind]
    reference = rename.get(REFERENCE[key], REFERENCE[key])
    if len(per_image_files) != len(table):
        raise ValueError(f"{kind}: {len(per_image_files)} per-image files for {len(table)} score files")
    per_image = {(r["dataset"], r[key], r[SEED]): read_csv(f).astype({"clip_id": str})
                 for r, f in zip(table.to_dict("records"), per_image_files)}
    rows = []
    for (dataset, name), group in table.groupby(["dataset", key], sort=False):
        group = group.sort_values(SEED)
        seeds = group[SEED].tolist()
        row = {"dataset": dataset, key: name, "seeds": len(seeds), "training_seeds": " ".join(map(str, seeds))}
        for m in METRICS:
            values = group[m].astype(float)
            row |= {f"{m}_mean": values.mean(), f"{m}_sd": values.std(ddof=1) if len(values) > 1 else np.nan,
                    f"{m}_min": values.min(), f"{m}_max": values.max()}
        ref = table[(table["dataset"] == dataset) & (table[key] == reference)].sort_values(SEED)
        if name != reference and len(ref):
            if ref[SEED].tolist() != seeds:
                raise ValueError(f"{kind}: {name} on {dataset} has training seeds {seeds}, {reference} "
                                 f"{ref[SEED].tolist()}")
            for m in METRICS:
                d = group[m].to_numpy(dtype=float) - ref[m].to_numpy(dtype=float)
                if np.isnan(d).any():
                    continue  # not measured in every seed of both (SAC without a shape classifier)
                if m in PER_IMAGE_METRICS:
                    paired = _paired_images(per_image, dataset, name, reference, seeds, m)
                    v = np.nan if paired is None else clip_variance(*paired, samples)
                else:  # FID: the runs' bootstrap variances (module docstring)
                    v = _fid_variance(group, ref, level)
                c = compare_across_seeds(d, v, level)
                row |= {f"{m}_diff": c.mean, f"{m}_diff_lo": c.lo, f"{m}_diff_hi": c.hi, f"{m}_signs": c.signs,
                        f"{m}_mark": c.mark}
        rows.append(row)
    return pd.DataFrame(rows)


def _fid_variance(group: pd.DataFrame, ref: pd.DataFrame, level: float) -> float:
    """FID's ``v``: the mean over seeds of the method's and the reference's bootstrap variances, summed (module
    docstring); NaN where a run has no FID interval."""
    if "FID_hi" not in group or "FID_hi" not in ref:
        return np.nan
    per_seed = [interval_variance(a, a_hi, level) + interval_variance(b, b_hi, level)
                for a, a_hi, b, b_hi in zip(group["FID"], group["FID_hi"], ref["FID"], ref["FID_hi"])]
    return float(np.mean(per_seed))


def _spread(row: dict, metric: str) -> str:
    mean = row.get(f"{metric}_mean")
    if mean is None or pd.isna(mean):
        return "–"
    f = ".1f" if metric == "FID" else ".3f"
    sd, low, high = row[f"{metric}_sd"], row[f"{metric}_min"], row[f"{metric}_max"]
    text = f"{mean:{f}}" + ("" if pd.isna(sd) else f" ± {sd:{f}} ({low:{f}}–{high:{f}})")
    mark = row.get(f"{metric}_mark")
    return text + (f" {mark}" if isinstance(mark, str) and mark else "")


def _difference(row: dict, metric: str) -> str:
    diff = row.get(f"{metric}_diff")
    if diff is None or pd.isna(diff):
        return "–"
    f = "+.1f" if metric == "FID" else "+.3f"
    lo, hi = row[f"{metric}_diff_lo"], row[f"{metric}_diff_hi"]
    interval = "" if pd.isna(lo) else f" [{lo:{f}}, {hi:{f}}]"
    mark = row.get(f"{metric}_mark")
    return f"{diff:{f}}{interval} {row[f'{metric}_signs']}" + (f" {mark}" if isinstance(mark, str) and mark else "")


def markdown(summary: pd.DataFrame, table: pd.DataFrame, kind: str, title: str = "", level: float = 0.95) -> str:
    """Two Markdown tables: the spread over seeds per method, and the paired differences to the reference."""
    key = TABLES[kind][0]
    reference = TABLES[kind][2].get(REFERENCE[key], REFERENCE[key])
    pct = f"{round(100 * level)} %"
    lines = [f"### {title}" if title else "", "", "| " + " | ".join(["dataset", key, "seeds"] + METRICS) + " |",
             "|" + "---|" * (3 + len(METRICS))]
    records = summary.to_dict("records")
    for row in records:
        lines.append("| " + " | ".join([row["dataset"], label(row[key]), str(row["seeds"])]
                                       + [_spread(row, m) for m in METRICS]) + " |")
    lines += ["", f"Differences to {label(reference)} of the same training seed (mean over seeds [{pct} interval], "
                  "the sign of each seed's difference in seed order):", "",
              "| " + " | ".join(["dataset", key] + [f"Δ{m}" for m in METRICS]) + " |",
              "|" + "---|" * (2 + len(METRICS))]
    for row in records:
        if row[key] != reference:
            lines.append("| " + " | ".join([row["dataset"], label(row[key])] + [_difference(row, m) for m in METRICS])
                         + " |")
    seeds = sorted(set(table[SEED]))
    notes = [f"Training seeds {', '.join(map(str, seeds))}: every row retrained with each (data, split, pretrained "
             "models and evaluation clips, seeds and noise fixed). Cells: mean over seeds ± between-seed standard "
             "deviation (range).",
             f"▲ / ▼: the difference to {label(reference)} of the same seed is above / below zero in every seed "
             f"*and* its {pct} interval excludes zero. The interval: mean ± t · sqrt(s²/n + v), s² the variance of "
             "the seeds' differences, v the evaluation clips' bootstrap variance of their mean (clips shared by all "
             "seeds; FID: the runs' bootstrap over images), Welch–Satterthwaite degrees of freedom "
             "(`sonic/metrics/replicates.py`). One seed gives no mark."]
    if "generated_on" in table.columns:
        machines = sorted(set(table["generated_on"].dropna()))
        notes.append("Images made on " + "; ".join(machines) + ".")
    return "\n".join(lines + [""] + "\n\n".join(notes).split("\n")).lstrip() + "\n"  # a paragraph per note


def write_replicates(score_files: list[str | Path], per_image_files: list[str | Path], seeds: list[int], kind: str,
                     out_csv: str | Path, out_summary: str | Path, out_md: str | Path, title: str = "",
                     samples: int = 2000, level: float = 0.95) -> pd.DataFrame:
    """Collect the runs of every training seed, summarise and write the three outputs (rows by dataset, then the
    given method order, then seed); returns the summary."""
    table = collect_seeds(score_files, seeds, kind)
    summary = summarise(table, per_image_files, kind, samples, level)
    key = TABLES[kind][0]
    table, summary = _ordered(table, key, SEED), _ordered(summary, key)
    write_csv(table, out_csv)
    write_csv(summary, out_summary)
    Path(out_md).write_text(markdown(summary, table, kind, title, level))
    return summary
