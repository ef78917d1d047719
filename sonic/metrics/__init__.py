"""The paper's metrics (README, Evaluation, supp §2.1): AIS, IIS, AIC and FID.

``scores`` holds the model-free definitions on embeddings and predictions, ``models`` embeds images and audio
with the evaluation CLIPs and Wav2CLIP and scores them, ``fid`` wraps torchmetrics' FID with a pluggable
feature network, ``clip_scores`` the CLIP features and zero-shot labels the quality checks share. The names
below resolve on first use, so a training job that imports ``clip_scores`` does not import torchmetrics.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "ClipImageFeatures": "sonic.metrics.fid",
    "fid": "sonic.metrics.fid",
    "aic": "sonic.metrics.models",
    "ais": "sonic.metrics.models",
    "iis": "sonic.metrics.models",
    "wav2clip_features": "sonic.metrics.models",
    "aic_from_predictions": "sonic.metrics.scores",
    "ais_from_embeddings": "sonic.metrics.scores",
    "ais_per_image": "sonic.metrics.scores",
    "iis_from_embeddings": "sonic.metrics.scores",
    "iis_per_image": "sonic.metrics.scores",
    "win_rates": "sonic.metrics.scores",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
