"""Scoring one method on one dataset (docs/evaluation.md): AIS, AIC, SAC, IIS and FID of a folder of generated images
against the dataset's cached references (:mod:`sonic.evaluation.references`), each with a bootstrap interval.

Missing images are reported (count and names in the result), never silently skipped; the metrics are computed
over the images present, and a folder with none is an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from sonic.data.manifest import has_labels
from sonic.data.tables import read_manifest, write_csv
from sonic.evaluation.references import References, batched, feature_network
from sonic.evaluation.runs import MACHINE_FILE, collect_folder, eval_jobs
from sonic.images import load_images

log = logging.getLogger(__name__)

METRICS = ("AIS", "AIC", "SAC", "IIS", "FID")


@dataclass
class ScoringModels:
    """The evaluation models of :func:`score_images`, loaded once per process and shared by every run it scores."""

    clip_ais: object
    clip_eval: object
    fid_features: torch.nn.Module

    @classmethod
    def load(cls, cfg) -> ScoringModels:
        from sonic.models import registry

        clip_ais = registry.load_clip(cfg, "clip_ais")
        clip_eval = clip_ais if cfg.models.clip_eval == cfg.models.clip_ais else registry.load_clip(cfg, "clip_eval")
        return cls(clip_ais, clip_eval, feature_network(cfg))


def score_images(cfg, refs: References, run: pd.DataFrame, label_names: list[str] | None, size: int | None = None,
                 models: ScoringModels | None = None, fid_interval: tuple[int, float] | None = None
                 ) -> tuple[dict, pd.DataFrame]:
    """Metrics of the images listed in ``run`` (clip_id, seed, label, path) and a per-image table.

    AIS: ``clip_ais`` image embedding vs the Wav2CLIP embedding of the image's audio and of the other validation
    audios; IIS: ``clip_eval`` image embedding vs the ground-truth frame and the other validation frames; AIC:
    ``clip_eval`` zero-shot over the raw label strings (NaN without ``label_names``: a dataset without labels); SAC:
    the references' shape classifier (:mod:`sonic.metrics.shape`, colour-blind) predicts the audio's label (NaN when
    the references have none); FID:
    against the validation frames; with ``fid_interval`` = (samples, level) also ``FID_lo`` / ``FID_hi``, its bootstrap
    interval over the images (:func:`sonic.metrics.bootstrap.fid_bootstrap`: the generated images by clip, the
    validation frames one by one). ``models`` defaults to the config's (:meth:`ScoringModels.load`)."""
    from sonic.metrics.clip_scores import image_features, text_features
    from sonic.metrics.fid import fid_from_features
    from sonic.metrics.scores import ais_per_image, iis_per_image

    if run.empty:
        raise ValueError("no generated images to score")
    unknown = sorted(set(run["clip_id"]) - set(refs.clip_ids))
    if unknown:
        raise ValueError(f"images of clips that are not validation references: {unknown[:3]}")
    images = load_images(run["path"].astype(str).tolist(), size)
    own = torch.tensor([refs.row(c) for c in run["clip_id"]])
    models = models or ScoringModels.load(cfg)
    ais = ais_per_image(image_features(models.clip_ais, images), refs.audio[own], refs.audio, own)
    clip_eval = models.clip_eval
    emb = image_features(clip_eval, images)
    iis = iis_per_image(emb, refs.frames[own], refs.frames, own)
    if label_names:
        predicted = [label_names[int(k)] for k in (emb @ text_features(clip_eval, label_names).T).argmax(dim=1)]
        aic = [float(p == t) for p, t in zip(predicted, run["label"].astype(str))]
    else:
        predicted, aic = [""] * len(run), [float("nan")] * len(run)
    if refs.shape is None:
        predicted_shape, sac = [""] * len(run), [float("nan")] * len(run)
    else:
        predicted_shape = refs.shape.predict(images)
        sac = [float(p == t) for p, t in zip(predicted_shape, run["label"].astype(str))]
    generated_fid = batched(models.fid_features, images)
    fid = fid_from_features(generated_fid, refs.fid)
    per_image = run[["clip_id", "seed", "label"]].assign(predicted=predicted, predicted_shape=predicted_shape,
                                                         AIS=ais.numpy(), IIS=iis.numpy(),
                                                         AIC=aic, SAC=sac)
    metrics = {"AIS": float(ais.mean()), "AIC": sum(aic) / len(aic), "SAC": sum(sac) / len(sac),
               "IIS": float(iis.mean()), "FID": fid}
    if fid_interval:
        from sonic.metrics.bootstrap import fid_bootstrap

        samples, level = fid_interval
        iv = fid_bootstrap(generated_fid.numpy(), refs.fid.numpy(), run["clip_id"].astype(str).tolist(), samples,
                           level)
        metrics |= {"FID_lo": iv.lo, "FID_hi": iv.hi}
    return metrics, per_image


def intervals(per_image: pd.DataFrame, samples: int, level: float, seed: int = 0) -> dict[str, float | None]:
    """``<metric>_lo`` / ``<metric>_hi`` of AIS, AIC, SAC and IIS: the cluster-bootstrap interval over the
    evaluation clips (:func:`sonic.metrics.bootstrap.cluster_bootstrap`; a clip's seeds stay together); None for a
    metric that was not measured (SAC without a shape classifier). FID's comes from :func:`score_images`."""
    from sonic.metrics.bootstrap import PER_IMAGE_METRICS, cluster_bootstrap

    out = {}
    for metric in PER_IMAGE_METRICS:
        if per_image[metric].isna().all():
            out |= {f"{metric}_lo": None, f"{metric}_hi": None}
            continue
        iv = cluster_bootstrap(per_image[metric].to_numpy(), per_image["clip_id"].astype(str).tolist(), samples,
                               level, seed)
        out |= {f"{metric}_lo": iv.lo, f"{metric}_hi": iv.hi}
    return out


def score_run(cfg, manifest: str | Path, refs: References, folder: str | Path, method: str, dataset: str,
              out_json: str | Path, out_csv: str | Path | None = None, seeds: int | None = None,
              models: ScoringModels | None = None) -> dict:
    """Score ``folder`` (our own run or an external system's, same layout) and write the JSON result."""
    seeds = seeds or cfg.evaluation.seeds
    jobs = eval_jobs(manifest, seeds)
    run, missing = collect_folder(folder, jobs, method)
    if run.empty:
        raise FileNotFoundError(f"{folder}: none of the {len(jobs)} expected images of {method} on {dataset} exist "
                                f"(layout <clip_id>_<seed>.png, e.g. {jobs['clip_id'][0]}_0.png)")
    table = read_manifest(manifest)
    labelled = has_labels(table)  # a dataset without labels: no AIC (nor SAC: its references have no classifier)
    label_names = sorted(set(table["label"].astype(str))) if labelled else None
    ev = cfg.evaluation
    metrics, per_image = score_images(cfg, refs, run, label_names, cfg.generation.resolution, models,
                                      (ev.bootstrap_samples, ev.interval_level))
    from sonic.machine import describe

    made_on = Path(folder) / MACHINE_FILE
    shape = refs.shape
    result = {"dataset": dataset, "method": method, **{k: None if pd.isna(v) else v for k, v in metrics.items()},
              **intervals(per_image, ev.bootstrap_samples, ev.interval_level), "interval_level": ev.interval_level,
              "images": len(run), "clips": int(per_image["clip_id"].nunique()), "expected": len(jobs),
              "missing": len(missing), "missing_images": missing, "labelled": labelled,
              "chance_AIC": 1 / len(label_names) if labelled else None,
              "SAC_real": refs.shape_real, "chance_SAC": None if shape is None else 1 / len(shape.labels),
              "SAC_note": refs.shape_note,
              "generated_on": json.loads(made_on.read_text()) if made_on.is_file() else None,
              "scored_on": describe()}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(result, indent=2) + "\n")
    if out_csv:
        write_csv(per_image, out_csv)
    log.info("%s on %s: %s (%d images, %d missing)", method, dataset,
             ", ".join(f"{k} {metrics[k]:.4g}" for k in METRICS if not pd.isna(metrics[k])), len(run), len(missing))
    return result
