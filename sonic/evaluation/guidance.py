"""Guidance, measured (docs/evaluation.md): the classifier-free guidance scale of the evaluation, chosen once for
every method by a rule stated in advance and measured on training clips.

The paper's scale (8) is tuned for SD-1.4; the demo's miniature SD over-saturates at it. So the scale is measured:

* **The sweep** (:func:`guidance_sweep`, one dataset, ``evaluation.guidance_sweep``): every Table 1 method trained
  here generates, at each of ``scales``, the first ``clips_per_class`` clips (by clip_id) of each label of the
  manifest's **train** split x ``seeds``, with the evaluation's generators and sampler (DDIM,
  ``guidance_sweep.steps`` or ``evaluation.steps``; :func:`sonic.evaluation.runs.generate_run`, so every method and
  scale starts a (clip, seed) from the same noise). Each (method, scale) is scored by AIC (``clip_eval`` zero-shot
  over the dataset's label strings, as :mod:`sonic.evaluation.score`), SAC (the shape classifier of the dataset's
  references file, fitted on the train frames), FID against the FID features of the same clips' real frames, and the
  clipped share (:func:`sonic.metrics.saturation.clipped_share`; the same share of those real frames beside it).
* **The rule** (:func:`choose_guidance`, over every dataset's sweep), fixed before any test clip was looked at: the
  chosen scale maximises the mean SAC over all (method, dataset) pairs among the scales whose mean clipped share
  (over the same pairs) is at most ``max_clipped``; ties go to the smaller scale; if no scale passes the clipping
  bound, the scale with the least clipping is chosen. SAC is the criterion because colour alone cannot meet it (the
  demo's classes are also colours, so AIC can), and the bound keeps a scale that wins SAC with saturated images out.
  A pair without SAC (a dataset whose train split has fewer than 2 classes) does not enter the mean.

Nothing here reads a validation or evaluation clip: the sweep's images, its FID reference set and the choice use
training clips only. The evaluation's ``guidance_scale`` is then set by hand from ``guidance_choice.json``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
from PIL import Image, ImageDraw

from sonic.config import ConfigError
from sonic.data.tables import read_csv, read_manifest, write_csv
from sonic.evaluation.runs import image_name

log = logging.getLogger(__name__)

SWEEP_COLUMNS = ["dataset", "method", "guidance", "images", "AIC", "SAC", "FID", "clipped", "clipped_real",
                 "chance_AIC", "chance_SAC"]
RULE = ("the scale with the highest mean SAC over all (method, dataset) pairs, among the scales whose mean clipped "
        "share is at most max_clipped; ties to the smaller scale; if none passes, the scale with the least clipping "
        "(fixed before any test clip was looked at; measured on training clips)")
TIE = 1e-9  # means closer than this are equal (ties go to the smaller scale)


def sweep_clips(manifest: str | Path, clips_per_class: int) -> pd.DataFrame:
    """(clip_id, label, frame) of the first ``clips_per_class`` train clips of each label, by clip_id, label-major
    (labels sorted)."""
    table = read_manifest(manifest)
    train = table[table["split"].astype(str) == "train"]
    if train.empty:
        raise ValueError(f"{manifest}: no train clips to sweep the guidance scale on")
    train = train.assign(clip_id=train["clip_id"].astype(str), label=train["label"].astype(str))
    train = train.sort_values(["label", "clip_id"], kind="stable")
    return train.groupby("label", sort=True).head(clips_per_class)[["clip_id", "label", "frame"]].reset_index(
        drop=True)


def sweep_jobs(clips: pd.DataFrame, seeds: int) -> pd.DataFrame:
    """(clip_id, seed, label) of every sweep clip x seed 0..seeds-1, clip-major (the layout of ``eval_jobs``)."""
    rows = [(c, s, lab) for c, lab in zip(clips["clip_id"], clips["label"]) for s in range(seeds)]
    return pd.DataFrame(rows, columns=["clip_id", "seed", "label"])


def scale_folder(root: str | Path, method: str, scale: float) -> Path:
    """Where one method's images at one scale go: ``<root>/<method>/g<scale>`` (``g3``, ``g2.5``)."""
    return Path(root) / method / f"g{float(scale):g}"


def measure(images: torch.Tensor, labels: list[str], label_names: list[str], clip_eval, shape, fid_net,
            real_fid: torch.Tensor) -> dict[str, float]:
    """AIC, SAC, FID and the clipped share of one (method, scale)'s ``images`` (N, 3, H, W) in [0, 1] of
    ``labels``; SAC is NaN without a shape classifier, FID NaN with fewer than 2 images on either side."""
    from sonic.evaluation.references import batched
    from sonic.metrics.clip_scores import zero_shot
    from sonic.metrics.fid import fid_from_features
    from sonic.metrics.saturation import clipped_share

    predicted = zero_shot(clip_eval, images, label_names)
    aic = sum(p == t for p, t in zip(predicted, labels)) / len(labels)
    sac = float("nan") if shape is None else sum(p == t for p, t in zip(shape.predict(images), labels)) / len(labels)
    if min(len(images), len(real_fid)) < 2:
        fid = float("nan")
    else:
        fid = fid_from_features(batched(fid_net, images), real_fid)
    return {"AIC": aic, "SAC": sac, "FID": fid, "clipped": clipped_share(images)}


def guidance_sweep(cfg, dataset: str, methods: Sequence[str], weights: Sequence[str], manifest: str | Path,
                   clap: str | Path, clap_index: str | Path, references: str | Path, references_index: str | Path,
                   images_dir: str | Path, out_csv: str | Path, out_png: str | Path, out_grid: str | Path,
                   load: Callable) -> pd.DataFrame:
    """The sweep of one dataset (module docstring): images under ``images_dir`` (:func:`scale_folder`), one row per
    method x scale in ``out_csv`` (:data:`SWEEP_COLUMNS`), the four measures against the scale in ``out_png`` and
    an image grid in ``out_grid``. ``load(cfg, method, weights)`` builds a method's generator (the evaluation's:
    :func:`sonic.evaluation.commands.load_generator`)."""
    from sonic.evaluation.references import batched, feature_network, load_references
    from sonic.evaluation.runs import generate_run
    from sonic.images import load_images
    from sonic.metrics.saturation import clipped_share
    from sonic.models import registry

    sweep = cfg.evaluation.guidance_sweep
    if sweep is None:
        raise ConfigError(f"{cfg.source}: evaluation.guidance_sweep is null: no guidance sweep is configured")
    ev = cfg.eval_settings()
    steps = sweep.steps or ev.steps
    resolution = cfg.generation.resolution
    clips = sweep_clips(manifest, sweep.clips_per_class)
    jobs = sweep_jobs(clips, sweep.seeds)
    label_names = sorted(set(read_manifest(manifest)["label"].astype(str)))
    shape = load_references(references, references_index).shape
    if shape is None:
        log.warning("%s: the references hold no shape classifier; SAC is NaN", dataset)
    clip_eval = registry.load_clip(cfg, "clip_eval")
    fid_net = feature_network(cfg)
    real = load_images(clips["frame"].astype(str).tolist(), resolution)
    real_fid, clipped_real = batched(fid_net, real), clipped_share(real)
    log.info("%s: %d train clips of %d classes x %d seed(s), %d DDIM steps, scales %s; real frames clipped %.4f",
             dataset, len(clips), clips["label"].nunique(), sweep.seeds, steps, list(sweep.scales), clipped_real)
    labels = jobs["label"].tolist()
    rows = []
    for method, w in zip(methods, weights, strict=True):
        generator = load(cfg, method, w)
        for scale in sweep.scales:
            folder = scale_folder(images_dir, method, scale)
            run = generate_run(generator, jobs, clap, clap_index, folder, method, steps, float(scale), ev.batch_size)
            images = load_images(run["path"].astype(str).tolist(), resolution)  # the saved 8-bit images
            m = measure(images, labels, label_names, clip_eval, shape, fid_net, real_fid)
            rows.append({"dataset": dataset, "method": method, "guidance": float(scale), "images": len(images), **m,
                         "clipped_real": clipped_real, "chance_AIC": 1 / len(label_names),
                         "chance_SAC": float("nan") if shape is None else 1 / len(shape.labels)})
            log.info("%s %s guidance %g: AIC %.3f, SAC %.3f, FID %.4g, clipped %.4f (real %.4f), %d images", dataset,
                     method, scale, m["AIC"], m["SAC"], m["FID"], m["clipped"], clipped_real, len(images))
        del generator
    table = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    write_csv(table, out_csv)
    plot_sweep(table, out_png, sweep.max_clipped)
    sweep_grid(clips, images_dir, list(methods), list(sweep.scales), out_grid)
    log.info("%s: guidance sweep -> %s, %s, %s", dataset, out_csv, out_png, out_grid)
    return table


# ---- figures ----------------------------------------------------------------------------------------------------
def plot_sweep(table: pd.DataFrame, out: str | Path, max_clipped: float | None = None) -> Path:
    """Four panels against the guidance scale, one line per method: AIC and SAC (chance dashed), FID, and the
    clipped share (the real frames' share dashed, the rule's bound dotted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), dpi=100)
    for ax, metric in zip(axes, ("AIC", "SAC", "FID", "clipped")):
        for method, rows in table.groupby("method", sort=False):
            rows = rows.sort_values("guidance")
            ax.plot(rows["guidance"], rows[metric], marker="o", label=method)
        reference = {"AIC": ("chance_AIC", "chance"), "SAC": ("chance_SAC", "chance"),
                     "clipped": ("clipped_real", "real frames")}.get(metric)
        if reference and table[reference[0]].notna().any():
            ax.axhline(float(table[reference[0]].iloc[0]), color="grey", linestyle="--", linewidth=1,
                       label=reference[1])
        if metric == "clipped" and max_clipped is not None:
            ax.axhline(max_clipped, color="black", linestyle=":", linewidth=1, label="bound")
        ax.set_title(metric if metric != "clipped" else "clipped share (0 or 255)")
        ax.set_xlabel("guidance scale")
        ax.set_xticks(sorted(table["guidance"].unique()))
        if metric in ("AIC", "SAC"):
            ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    dataset = ", ".join(map(str, table["dataset"].unique()))
    fig.suptitle(f"Guidance sweep on training clips: {dataset}", fontsize=10)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def sweep_grid(clips: pd.DataFrame, images_dir: str | Path, methods: list[str], scales: list[float],
               out: str | Path, max_columns: int = 8, cell: int = 64, seed: int = 0) -> Path:
    """Rows: the real frames, then every method x scale; columns: the first sweep clip of up to ``max_columns``
    classes (``seed``); a grey cell where an image is missing."""
    columns = clips.drop_duplicates("label").head(max_columns)
    rows = [("real frames", [Path(f) for f in columns["frame"].astype(str)])]
    for method in methods:
        for scale in scales:
            folder = scale_folder(images_dir, method, scale)
            rows.append((f"{method} g={float(scale):g}", [folder / image_name(c, seed) for c in columns["clip_id"]]))
    header, label_w = 14, 120
    grid = Image.new("RGB", (label_w + cell * len(columns), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for j, label in enumerate(columns["label"]):
        draw.text((label_w + j * cell + 2, 2), str(label)[: cell // 6], fill="black")
    for i, (title, paths) in enumerate(rows):
        y = header + i * cell
        draw.text((3, y + cell // 2 - 6), title[:20], fill="black")
        for j, path in enumerate(paths):
            box = (label_w + j * cell, y)
            if path.is_file():
                with Image.open(path) as im:
                    grid.paste(im.convert("RGB").resize((cell, cell), Image.Resampling.BICUBIC), box)
            else:
                draw.rectangle([box[0], y, box[0] + cell - 1, y + cell - 1], fill="#cccccc")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return Path(out)


# ---- the rule ---------------------------------------------------------------------------------------------------
def _finite(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def choose_guidance(table: pd.DataFrame, max_clipped: float) -> dict:
    """The rule (module docstring) on the rows of every dataset's sweep (:data:`SWEEP_COLUMNS`; each (dataset,
    method) pair measured once at every scale): the chosen ``guidance_scale``, whether it passed the clipping bound,
    and per scale the means over the pairs that the rule reads."""
    missing = [c for c in ("dataset", "method", "guidance", "SAC", "clipped") if c not in table.columns]
    if missing or table.empty:
        raise ValueError(f"guidance sweep rows: missing columns {missing}" if missing else "no guidance sweep rows")
    pairs = table[["dataset", "method"]].drop_duplicates()
    scales = sorted(float(s) for s in table["guidance"].unique())
    counts = table.groupby(["dataset", "method", "guidance"]).size()
    if (counts != 1).any() or len(counts) != len(pairs) * len(scales):
        raise ValueError(f"every (dataset, method) pair must be measured once at each of the scales {scales}; "
                         f"got {len(table)} rows for {len(pairs)} pairs")
    means = table.groupby("guidance")[[c for c in ("SAC", "AIC", "FID", "clipped", "clipped_real")
                                       if c in table.columns]].mean()
    if means["SAC"].isna().all():
        raise ValueError("no guidance sweep row has a SAC (no dataset has a shape classifier): the rule cannot choose")
    passing = [s for s in scales if means.loc[s, "clipped"] <= max_clipped]
    if passing:
        best = max(means.loc[s, "SAC"] for s in passing if not math.isnan(means.loc[s, "SAC"]))
        chosen = min(s for s in passing if means.loc[s, "SAC"] >= best - TIE)
        reason = f"highest mean SAC ({best:.4f}) among the scales with mean clipped share <= {max_clipped:g}"
    else:
        least = float(means["clipped"].min())
        chosen = min(s for s in scales if means.loc[s, "clipped"] <= least + TIE)
        reason = f"no scale has a mean clipped share <= {max_clipped:g}: the least clipping ({least:.4f})"
    per_scale = [{"guidance": s, **{k: _finite(v) for k, v in means.loc[s].items()}, "passes": s in passing}
                 for s in scales]
    return {"guidance_scale": chosen, "passed_clipping_bound": bool(passing), "reason": reason, "rule": RULE,
            "max_clipped": max_clipped, "pairs": len(pairs), "datasets": sorted(pairs["dataset"].astype(str).unique()),
            "methods": sorted(pairs["method"].astype(str).unique()), "scales": per_scale}


def write_choice(sweeps: Sequence[str | Path], max_clipped: float, out_json: str | Path, out_md: str | Path) -> dict:
    """:func:`choose_guidance` on the sweep CSVs of every dataset, written as JSON and as a Markdown table (one line
    per scale, the chosen one marked)."""
    table = pd.concat([read_csv(p) for p in sweeps], ignore_index=True)
    choice = choose_guidance(table, max_clipped) | {"sweeps": [str(p) for p in sweeps]}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(choice, indent=2) + "\n")

    def cell(value, fmt):
        return "–" if value is None else format(value, fmt)

    lines = ["# Guidance, measured", "",
             f"Rule: {RULE}. Means over {choice['pairs']} (method, dataset) pairs: "
             f"{', '.join(choice['methods'])} on {', '.join(choice['datasets'])}.", "",
             f"| guidance | mean SAC | mean AIC | mean clipped | clipped <= {max_clipped:g} | chosen |",
             "|---|---|---|---|---|---|"]
    for s in choice["scales"]:
        chosen = "**chosen**" if s["guidance"] == choice["guidance_scale"] else ""
        lines.append(f"| {s['guidance']:g} | {cell(s['SAC'], '.3f')} | {cell(s.get('AIC'), '.3f')} | "
                     f"{cell(s['clipped'], '.4f')} | {'yes' if s['passes'] else 'no'} | {chosen} |")
    real = choice["scales"][0].get("clipped_real")
    lines += ["", f"Chosen: guidance {choice['guidance_scale']:g} ({choice['reason']})."
              + ("" if real is None else f" The real frames of the same clips: clipped share {real:.4f}."), ""]
    Path(out_md).write_text("\n".join(lines))
    log.info("guidance: %g (%s) -> %s", choice["guidance_scale"], choice["reason"], out_json)
    return choice
