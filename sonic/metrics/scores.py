"""AIS, IIS and AIC on precomputed embeddings and predictions (docs/evaluation.md), free of any model.

AIS and IIS share one statistic, the *win rate* of a generated image: the fraction of reference items r with
``sim(g, own) > sim(g, r)`` (strict: a tie is not a win), sim being the cosine similarity. The reference set is
the validation set, and the image's own item is left out of its comparison (``own_index``). The metric is the
mean of the per-image win rates, as in the authors' evaluation code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(query: torch.Tensor, positive: torch.Tensor, references: torch.Tensor,
           own_index: torch.Tensor | None) -> None:
    if query.dim() != 2 or positive.shape != query.shape:
        raise ValueError(f"query and positive must both be (N, D), got {tuple(query.shape)} and "
                         f"{tuple(positive.shape)}")
    if references.dim() != 2 or references.shape[1] != query.shape[1]:
        raise ValueError(f"references must be (R, {query.shape[1]}), got {tuple(references.shape)}")
    if query.shape[0] == 0:
        raise ValueError("no images to score")
    remaining = references.shape[0] - (own_index is not None)
    if remaining < 1:
        raise ValueError(f"{references.shape[0]} reference(s) leave nothing to compare against")
    if own_index is not None:
        if own_index.shape != (query.shape[0],) or own_index.dtype.is_floating_point:
            raise ValueError(f"own_index must be an integer tensor of shape ({query.shape[0]},), got "
                             f"{own_index.dtype} {tuple(own_index.shape)}")
        if own_index.numel() and (own_index.min() < 0 or own_index.max() >= references.shape[0]):
            raise ValueError(f"own_index must lie in [0, {references.shape[0]}), got "
                             f"[{int(own_index.min())}, {int(own_index.max())}]")


def win_rates(query: torch.Tensor, positive: torch.Tensor, references: torch.Tensor,
              own_index: torch.Tensor | None = None, chunk: int = 1024) -> torch.Tensor:
    """Per-query win rate (N,) of docs/evaluation.md: the fraction of reference rows r, except row ``own_index[i]``,
    with ``cos(query[i], positive[i]) > cos(query[i], r)``; all references count when ``own_index`` is None.

    query (N, D), positive (N, D), references (R, D); not necessarily normalised. The cosines are computed in
    float64, and the positive and reference similarities of a chunk of queries come out of one matrix product,
    so an exact duplicate of the positive among the references ties exactly (and so is not a win)."""
    _check(query, positive, references, own_index)
    q = F.normalize(query.detach().double(), dim=-1)  # (N, D)
    p = positive.detach().double().to(q.device)
    r = references.detach().double().to(q.device)
    n, n_ref = q.shape[0], r.shape[0]
    wins = []
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        k = F.normalize(torch.cat([p[rows], r]), dim=-1)  # (C + R, D): this chunk's positives, then references
        sims = q[rows] @ k.T  # (C, C + R)
        c = sims.shape[0]
        pos = sims[:, :c].diagonal()  # (C,)
        ref = sims[:, c:]  # (C, R)
        beats = ref < pos[:, None]  # (C, R), strict
        if own_index is not None:
            own = own_index[rows].to(q.device).long()  # (C,)
            beats[torch.arange(c, device=q.device), own] = False
        wins.append(beats.sum(dim=1).double())
    return torch.cat(wins).cpu() / (n_ref - (own_index is not None))


def ais_per_image(image_emb: torch.Tensor, audio_emb_of_image: torch.Tensor, reference_audio_emb: torch.Tensor,
                  own_index: torch.Tensor | None = None) -> torch.Tensor:
    """AIS of each generated image (N,) (docs/evaluation.md): CLIP image embeddings (N, D) against the Wav2CLIP
    embedding of the conditioning audio (N, D) and of the reference audios (R, D); ``own_index[i]`` is the row of image
    i's audio in the references, left out of its comparison."""
    return win_rates(image_emb, audio_emb_of_image, reference_audio_emb, own_index)


def ais_from_embeddings(image_emb: torch.Tensor, audio_emb_of_image: torch.Tensor,
                        reference_audio_emb: torch.Tensor, own_index: torch.Tensor | None = None) -> float:
    """AIS (docs/evaluation.md): the mean of :func:`ais_per_image`."""
    return ais_per_image(image_emb, audio_emb_of_image, reference_audio_emb, own_index).mean().item()


def iis_per_image(image_emb: torch.Tensor, own_frame_emb: torch.Tensor, reference_frame_emb: torch.Tensor,
                  own_index: torch.Tensor | None = None) -> torch.Tensor:
    """IIS of each generated image (N,) (docs/evaluation.md): CLIP image embeddings (N, D) of the generated images
    against those of the ground-truth frame of their audio (N, D) and of the reference frames (R, D); ``own_index[i]``
    is the row of image i's own frame in the references, left out of its comparison."""
    return win_rates(image_emb, own_frame_emb, reference_frame_emb, own_index)


def iis_from_embeddings(image_emb: torch.Tensor, own_frame_emb: torch.Tensor, reference_frame_emb: torch.Tensor,
                        own_index: torch.Tensor | None = None) -> float:
    """IIS (docs/evaluation.md): the mean of :func:`iis_per_image`."""
    return iis_per_image(image_emb, own_frame_emb, reference_frame_emb, own_index).mean().item()


def aic_from_predictions(predicted: list[str], truth: list[str]) -> float:
    """AIC (docs/evaluation.md): the fraction of generated images whose zero-shot label equals their audio's label."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} labels")
    if not truth:
        raise ValueError("no predictions to score")
    return sum(p == t for p, t in zip(predicted, truth)) / len(truth)
