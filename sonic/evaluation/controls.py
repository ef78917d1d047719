"""Figures for the editing controls and the gate analysis.

* :func:`figure10` — one source image edited along a linear interpolation between two audios' CLAP embeddings and
  along a gain sweep of one audio (paper Fig. 10a/b), as a grid PNG, with what each control changed
  (:func:`control_measures`: CLIP distance along the interpolation, brightness along the gain). All edits share
  one inversion. :func:`most_different_pair` picks the two classes to interpolate between.
* :func:`gate_norms` / :func:`save_gate_norms` — the norm of every adapter layer's gated cross-attention output
  across the diffusion steps of a generation (supp. Fig. 3, §3.2), captured by forward hooks that exist only
  inside :func:`record_gate_norms`; written as CSV and a line plot.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from sonic.editing.inversion import InversionCache, invert
from sonic.editing.pnp import PnPConfig, edit
from sonic.images import to_pil
from sonic.models.pipeline import interpolate_embeddings


# ---- Fig. 10: interpolation and gain ----------------------------------------------------------------------------
def control_embeddings(pipe, wave_a: np.ndarray, wave_b: np.ndarray, alphas: Sequence[float],
                       gains_db: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """CLAP embeddings (len(alphas), d) along a -> b and (len(gains_db), d) of ``wave_a`` at each gain."""
    a, b = pipe.embed_audio([wave_a]), pipe.embed_audio([wave_b])  # (1, d) each
    interp = torch.cat([interpolate_embeddings(a, b, float(alpha)) for alpha in alphas])
    gains = torch.cat([pipe.embed_audio([wave_a], gain_db=float(g)) for g in gains_db])
    return interp, gains


def image_grid(source: Image.Image, rows: Sequence[tuple[str, Sequence[tuple[str, Image.Image]]]],
               label_height: int = 12) -> Image.Image:
    """Rows of captioned tiles, each row led by the source image and the row's title."""
    w, h = source.size
    cols = 1 + max(len(tiles) for _, tiles in rows)
    grid = Image.new("RGB", (cols * w, len(rows) * (h + label_height)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (title, tiles) in enumerate(rows):
        y = r * (h + label_height)
        for c, (caption, tile) in enumerate([(title, source)] + list(tiles)):
            draw.text((c * w + 1, y), caption, fill="black")
            grid.paste(tile.resize((w, h)), (c * w, y + label_height))
    return grid


@torch.no_grad()
def figure10(
    pipe,
    source_image,
    wave_a: np.ndarray,
    wave_b: np.ndarray,
    out: str | Path,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    gains_db: Sequence[float] = (-12.0, -6.0, 0.0, 6.0, 12.0),
    prompt: str | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 8.0,
    config: PnPConfig = PnPConfig(),
    beta: float | Mapping[str, float] = 1.0,
    cache: InversionCache | None = None,
    batch_size: int = 8,
    clip=None,
) -> dict[str, list[float]]:
    """Paper Fig. 10 for one source: row 1 interpolates a -> b, row 2 sweeps the gain of a. Writes ``out`` and
    returns what each control did (:func:`control_measures`, with ``clip`` the image CLIP that measures the
    interpolation; without it, brightness only): each tile's caption carries its number."""
    interp, gains = control_embeddings(pipe, wave_a, wave_b, alphas, gains_db)
    inversion = invert(pipe, source_image, num_inference_steps, cache)
    edited = edit(pipe, None, torch.cat([interp, gains]), prompt, num_inference_steps, guidance_scale, beta=beta,
                  config=config, inversion=inversion, batch_size=batch_size)
    measures = control_measures(edited[: len(alphas)], edited[len(alphas):], clip) | {
        "alphas": [float(a) for a in alphas], "gains_db": [float(g) for g in gains_db]}
    images = to_pil(edited)
    distance = measures.get("clip_distance") or [None] * len(alphas)
    rows = [("a->b", [(f"{a:g}" + ("" if d is None else f" d{d:.2f}"), im)
                      for a, d, im in zip(alphas, distance, images[: len(alphas)], strict=True)]),
            ("gain", [(f"{g:+g}dB b{v:.2f}", im)
                      for g, v, im in zip(gains_db, measures["brightness"], images[len(alphas):], strict=True)])]
    source = to_pil(inversion.image[None])[0]
    scale = max(1, 128 // source.width)  # small models: enlarge the tiles so the captions fit
    big = lambda im: im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)  # noqa: E731
    grid = image_grid(big(source), [(t, [(c, big(im)) for c, im in tiles]) for t, tiles in rows])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return measures


def control_measures(interpolation: torch.Tensor, gain_sweep: torch.Tensor, clip=None) -> dict[str, list[float]]:
    """What the controls change: the image-CLIP cosine distance of each interpolation image from the first (alpha =
    0; with ``clip``), and the mean brightness (mean RGB in [0, 1]) of each image of the gain sweep."""
    out = {"brightness": [float(im.mean()) for im in gain_sweep]}
    if clip is not None:
        from sonic.metrics.clip_scores import image_features

        f = image_features(clip, interpolation)
        out["clip_distance"] = [float(1 - f[0] @ f[k]) for k in range(len(f))]
    return out


def most_different_pair(features: torch.Tensor, labels: Sequence[str]) -> tuple[str, str, float]:
    """The two labels whose mean (L2-normalised) image features are least alike, and their cosine: the pair whose
    generations differ most, for the interpolation of Fig. 10."""
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"the sound-control figure needs images of two classes, got {names}")
    index = {n: [i for i, label in enumerate(labels) if label == n] for n in names}
    means = torch.nn.functional.normalize(torch.stack([features[index[n]].mean(0) for n in names]), dim=-1)
    sim = means @ means.T + 2 * torch.eye(len(names))  # the diagonal is never the minimum
    i, j = divmod(int(sim.argmin()), len(names))
    return names[min(i, j)], names[max(i, j)], float(sim[i, j])


# ---- supp. Fig. 3: gated output norms across steps --------------------------------------------------------------
@contextlib.contextmanager
def record_gate_norms(adapters, conditional_half: bool = True) -> Iterator[dict[str, list[float]]]:
    """Hooks on every gated audio module: each call appends the mean per-token L2 norm of its output, the term
    ``beta * tanh(gamma) * CrossAttn_audio`` added to the block (paper Eq. 9). With ``conditional_half`` only
    the second half of the batch counts (the pipeline batches [unconditional; conditional])."""
    norms: dict[str, list[float]] = {name: [] for name, _ in adapters.modules()}

    def hook_for(name: str):
        def hook(module, args, output: torch.Tensor) -> None:
            out = output.chunk(2)[1] if conditional_half and output.shape[0] % 2 == 0 else output  # (B, N, C)
            norms[name].append(float(out.float().norm(dim=-1).mean()))

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in adapters.modules()]
    try:
        yield norms
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def gate_norms(pipe, audio_embeds: torch.Tensor, prompt: str | None = None, seed: int = 0,
               num_inference_steps: int = 50, guidance_scale: float = 8.0,
               beta: float | Mapping[str, float] = 1.0) -> list[dict]:
    """Generate from K audios (one batch, one seed) and return rows {step, timestep, layer, norm}: the gated
    output norm of each adapter layer at each DDIM step, averaged over the K conditional branches."""
    embeds = torch.as_tensor(audio_embeds)
    embeds = embeds[None] if embeds.ndim == 1 else embeds
    with record_gate_norms(pipe.adapters) as norms:
        pipe(embeds, prompt=prompt, seeds=[seed], num_inference_steps=num_inference_steps,
             guidance_scale=guidance_scale, beta=beta, batch_size=len(embeds), progress=False)
    timesteps = [int(t) for t in pipe.scheduler.timesteps]
    return [{"step": i, "timestep": timesteps[i], "layer": name, "norm": value}
            for name, values in norms.items() for i, value in enumerate(values)]


def save_gate_norms(rows: list[dict], csv_path: str | Path, png_path: str | Path | None = None) -> None:
    """The rows of :func:`gate_norms` as CSV, and a plot of norm against step, one line per layer."""
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "timestep", "layer", "norm"])
        writer.writeheader()
        writer.writerows(rows)
    if png_path is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for layer in dict.fromkeys(r["layer"] for r in rows):
        points = [(r["step"], r["norm"]) for r in rows if r["layer"] == layer]
        ax.plot(*zip(*points, strict=True), label=layer, linewidth=1)
    ax.set_xlabel("DDIM step (0 = most noise)")
    ax.set_ylabel("mean token norm of gated output")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path)
    plt.close(fig)
