"""Editing runs of Table 2 (paper §3.5): every source image edited with every evaluation audio of a
dataset, by one method, with the same Plug-and-Play injection.

Methods: ``SonicDiffusion`` (audio through the adapters), ``PnP`` (the audio's class label as text prompt),
``AudioToken`` and ``GlueGen`` (their text-encoder-space condition of the audio as the prompt states). One DDIM
inversion per source image (:func:`invert_sources`, one job per dataset), read by every audio and every method.

Layout: ``<out>/<clip_id>_<source index>.png`` — the layout of generation runs with the source index in the seed's
place, so the same scoring code reads it (``evaluate score --seeds <number of sources>``) — plus ``manifest.csv``
and ``structure.json``: how much of the source survives (cosine similarity of source and edit in the ``clip_eval``
image space, against the similarity of unrelated sources) and how often the unedited source is already classified
as the audio's label (the AIC an edit starts from; the scoring step adds the SAC it starts from,
:func:`source_shape_accuracy`, since the shape classifier lives in the dataset's references).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from sonic.data.features import load_clap_cache
from sonic.data.tables import read_csv, read_manifest, write_csv
from sonic.evaluation.runs import RUN_COLUMNS, eval_jobs, image_name, write_machine
from sonic.images import to_pil
from sonic.methods import EDITORS, RELEASE, SONIC

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def source_images(manifest: str | Path, folder: str | None, count: int) -> list[Path]:
    """The configured folder's images (sorted), or held-out frames: validation clips outside the evaluation
    subset first (so the edit's audio never comes from the source's own clip), one per class, then the rest."""
    if folder:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise FileNotFoundError(f"editing.sources: no images in {folder}")
        return paths[:count]
    table = read_manifest(manifest)
    val = table[table["split"] == "val"]
    outside = val[val["eval"].astype(str).str.lower() != "true"]
    ordered = pd.concat([outside.drop_duplicates("label"), val.drop_duplicates("label"), val])
    return [Path(p) for p in dict.fromkeys(ordered["frame"].astype(str))][:count]


def _editor(cfg, method: str, weights: str, labels: list[str]):
    """(model, the keyword arguments of :func:`sonic.editing.pnp.edit` for a batch of CLAP embeddings and their
    audio indices). The text-driven baselines edit without adapters: PnP on the base SD with the audio's class
    label as the prompt, AudioToken and GlueGen with their own text-encoder-space condition of the audio."""
    from sonic import competitors
    from sonic.editing.pnp import TextConditions
    from sonic.models import registry
    from sonic.models.pipeline import SonicPipeline
    from sonic.models.sampling import FrozenSDSampler

    if method in (SONIC, RELEASE):
        pipe = SonicPipeline.from_weights(weights, registry.load_stable_diffusion(cfg))
        return pipe, lambda embeds, idx: {"audio_embeds": embeds}
    if method == "PnP":
        model = FrozenSDSampler.from_sd(registry.load_stable_diffusion(cfg))
        states = {lab: model.encode_text([lab]) for lab in sorted(set(labels))}

        def label_prompts(embeds: torch.Tensor, idx: list[int]) -> dict:
            return {"conditions": TextConditions(model, torch.cat([states[labels[i]] for i in idx]))}

        return model, label_prompts
    generator = competitors.load_generator(cfg, method.lower(), weights)

    def own_conditions(embeds: torch.Tensor, idx: list[int]) -> dict:
        return {"conditions": TextConditions(generator, generator.conditions(embeds, None))}

    return generator, own_conditions


def invert_sources(cfg, sources: list[Path], out_dir: str | Path) -> int:
    """The frozen SD's DDIM inversion of each source at ``editing.steps``, written to ``out_dir``: the inversions
    every editing run of the dataset reads (those whose UNet is the base one: SonicDiffusion, whose adapters are
    off in the source branch, PnP and GlueGen). Returns how many were computed (the others were there)."""
    from sonic.editing.inversion import InversionCache, invert, model_identity
    from sonic.images import load_images
    from sonic.models import registry
    from sonic.models.sampling import FrozenSDSampler

    model = FrozenSDSampler.from_sd(registry.load_stable_diffusion(cfg))
    cache = InversionCache(out_dir, model_identity(model))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    steps = cfg.edit_settings().steps
    for src in tqdm(sources, desc="invert", unit="img"):
        invert(model, load_images([str(src)], cfg.generation.resolution)[0], steps, cache)
    log.info("%d sources inverted into %s (%d already there)", cache.misses, out_dir, cache.hits)
    return cache.misses


def edit_run(cfg, method: str, weights: str | None, manifest: str | Path, clap: str | Path, clap_index: str | Path,
             sources: list[Path], out_dir: str | Path, cache_dir: str | Path, read_only_cache: bool = False
             ) -> pd.DataFrame:
    """Edit each source with each evaluation audio (``editing.*`` settings) and write images, manifest and
    structure figures. ``weights``: the method's weights folder (PnP reads none). ``read_only_cache``: the
    inversions in ``cache_dir`` are another job's output (:func:`invert_sources`); what they lack is computed in
    memory."""
    from sonic.editing.inversion import InversionCache, model_identity
    from sonic.editing.pnp import PnPConfig, edit
    from sonic.images import load_images
    from sonic.models import registry

    if method not in EDITORS:
        raise ValueError(f"unknown editing method {method!r}; one of {EDITORS}")
    if weights is None and method != "PnP":
        raise ValueError(f"editing with {method} needs its weights folder")
    ed = cfg.edit_settings()
    steps, guidance = ed.steps, ed.guidance_scale
    pnp = PnPConfig.from_settings(ed)
    jobs = eval_jobs(manifest, 1)
    clips, labels = jobs["clip_id"].tolist(), jobs["label"].tolist()
    embeddings, rows = load_clap_cache(clap, clap_index)
    embeds = embeddings[torch.tensor([rows[c] for c in clips])]
    model, condition = _editor(cfg, method, weights, labels)
    cache = InversionCache(cache_dir, model_identity(model), read_only=read_only_cache)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = cfg.generation.resolution
    written, source_tensors = [], []
    batch = cfg.generation.batch_size
    bar = tqdm(total=len(sources) * len(clips), desc=f"edit {method}", unit="img")
    for j, src in enumerate(sources):
        source = load_images([str(src)], size)[0]
        source_tensors.append(source)
        for start in range(0, len(clips), batch):
            idx = list(range(start, min(start + batch, len(clips))))
            images = edit(model, source, num_inference_steps=steps, guidance_scale=guidance,
                          cache=cache, config=pnp, batch_size=batch, **condition(embeds[idx], idx))
            for i, image in zip(idx, to_pil(images)):
                path = out / image_name(clips[i], j)
                image.save(path)
                written.append((clips[i], j, labels[i], method, str(path), str(src)))
            bar.update(len(idx))
    bar.close()
    table = pd.DataFrame(written, columns=RUN_COLUMNS + ["source"])
    write_csv(table, out / "manifest.csv")
    write_machine(out)

    structure = {"method": method, "sources": [str(s) for s in sources], "edits": len(table),
                 **structure_scores(registry.load_clip(cfg, "clip_eval"), torch.stack(source_tensors),
                                    load_images(table["path"].tolist(), size), torch.tensor(table["seed"].tolist()),
                                    table["label"].tolist(), sorted(set(read_manifest(manifest)["label"].astype(str)))),
                 "inversion_cache": {"hits": cache.hits, "misses": cache.misses}}
    (out / "structure.json").write_text(json.dumps(structure, indent=2) + "\n")
    log.info("%s: %d edits of %d sources; CLIP similarity to the source %.3f (other sources %s), edge SSIM %.3f "
             "(other sources %s), source AIC %.3f", method, len(table), len(sources), structure["source_similarity"],
             structure["other_source_similarity"], structure["edge_ssim"], structure["other_edge_ssim"],
             structure["source_AIC"])
    return table


def structure_scores(clip_eval, sources: torch.Tensor, edits: torch.Tensor, own: torch.Tensor, labels: list[str],
                     names: list[str]) -> dict:
    """How much of its source each edit keeps, against the other sources as the baseline: cosine similarity in the
    ``clip_eval`` image space and SSIM of edge maps; and the AIC of the unedited sources (where the edits start).
    ``own[k]`` is the index in ``sources`` of edit k's source, ``labels[k]`` the class of its audio."""
    from sonic.metrics.clip_scores import image_features, zero_shot
    from sonic.metrics.structure import edge_ssim_matrix

    n = len(sources)
    others = [[s for s in range(n) if s != int(own[k])] for k in range(len(edits))]
    cosine = image_features(clip_eval, edits) @ image_features(clip_eval, sources).T  # (E, S)
    ssim = edge_ssim_matrix(edits, sources)  # (E, S)
    rows = torch.arange(len(edits))

    def versus_others(m: torch.Tensor) -> float | None:
        return float(torch.stack([m[k, o].mean() for k, o in enumerate(others)]).mean()) if n > 1 else None

    predicted = zero_shot(clip_eval, sources, names)
    return {
        "source_similarity": float(cosine[rows, own].mean()),
        "other_source_similarity": versus_others(cosine),
        "edge_ssim": float(ssim[rows, own].mean()),
        "other_edge_ssim": versus_others(ssim),
        "source_AIC": sum(predicted[int(s)] == lab for s, lab in zip(own, labels)) / len(edits),
    }


def source_shape_accuracy(shape, folder: str | Path, size: int) -> float | None:
    """SAC of the unedited sources of the editing run in ``folder`` (its ``manifest.csv``: each edit's source and
    audio label): how often SAC's shape classifier (:class:`sonic.metrics.shape.ShapeClassifier`, from the dataset's
    references) already gives a source its edit's audio class — the SAC the edits start from, as ``source_AIC`` is
    their AIC. None without a classifier."""
    from sonic.images import load_images
    from sonic.metrics.shape import share_correct

    if shape is None:
        return None
    run = read_csv(Path(folder) / "manifest.csv")
    edited = run["source"].astype(str).tolist()
    sources = sorted(set(edited))
    predicted = dict(zip(sources, shape.predict(load_images(sources, size))))
    return share_correct([predicted[s] for s in edited], run["label"].astype(str).tolist())
