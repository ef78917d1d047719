"""The paper's metrics (docs/evaluation.md, supp §2.1): AIS, IIS, AIC and FID, and our colour-blind SAC.

``scores`` holds the model-free definitions on embeddings and predictions, ``models`` embeds images and audio
with the evaluation CLIPs and Wav2CLIP and scores them, ``fid`` wraps torchmetrics' FID with a pluggable
feature network, ``clip_scores`` the CLIP features and zero-shot labels the quality checks share
(torchmetrics is imported by the functions that use it), ``shape`` the shape classifier of SAC (not imported
here: it needs scikit-image, which only the evaluation and training environments carry), ``saturation`` the clipped
share of 8-bit values at 0 or 255 (the guidance sweep's measure of over-saturation), ``bootstrap`` the intervals (over
evaluation clips; FID's over images) and ``replicates`` the comparison of methods across training seeds.
"""

from sonic.metrics.fid import ClipImageFeatures, fid
from sonic.metrics.models import aic, ais, iis, wav2clip_features
from sonic.metrics.scores import (
    aic_from_predictions,
    ais_from_embeddings,
    ais_per_image,
    iis_from_embeddings,
    iis_per_image,
    win_rates,
)

__all__ = [
    "ClipImageFeatures",
    "aic",
    "aic_from_predictions",
    "ais",
    "ais_from_embeddings",
    "ais_per_image",
    "fid",
    "iis",
    "iis_from_embeddings",
    "iis_per_image",
    "wav2clip_features",
    "win_rates",
]
