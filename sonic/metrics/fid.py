"""FID between generated images and real frames through torchmetrics, with any feature network (docs/evaluation.md).

torchmetrics' ``FrechetInceptionDistance`` takes an ``nn.Module`` as ``feature``. Its contract (torchmetrics
1.9, ``torchmetrics/image/fid.py``), which :func:`fid` relies on:

* images reach the module untouched: ``normalize=True`` only rescales images for the built-in Inception, so a
  custom module gets the float images in [0, 1] exactly as passed to ``update``;
* the module returns (N, D) features (a 1-D output counts as one sample), accumulated in float64; the
  result comes back in the features' dtype;
* D is read from an integer ``num_features`` attribute; without it the metric probes the module with a random
  (1, 3, 299, 299) image at construction, so the modules here carry ``num_features``;
* the module becomes the metric's child ``inception``: moving or casting the metric (``.to``, ``set_dtype``)
  moves or casts the feature network too, so :func:`fid` leaves the metric on the CPU and the modules here bring
  their outputs back to the images' device themselves;
* the module is not put in eval mode by the metric (only its built-in Inception is), so :class:`FidNetFeatures`,
  whose BatchNorm must use its running statistics, stays in eval mode whatever ``train()`` asks.
"""

from __future__ import annotations

import torch
from torch import nn


def _metric(feature: nn.Module, **kwargs):
    # imported here: torchmetrics' package init takes seconds, and building the references needs only the feature
    # networks of this module
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=feature, reset_real_features=True, **kwargs)


class ClipImageFeatures(nn.Module):
    """A CLIP image tower as FID feature network: (N, 3, H, W) images in [0, 1] -> (N, projection_dim) CLIP image
    embeddings, on the images' device. The workflow's FID never uses it: the CLIPs judge AIC, IIS and AIS, and the
    demo's text tower conditions its generators, so FID has its own network (:class:`FidNetFeatures`,
    :class:`InceptionFeatures`; docs/evaluation.md).

    Images go through the CLIP's own image processor (8-bit PIL round, resize, crop, normalise) as in
    :func:`sonic.metrics.clip_scores.image_features`. The projected embedding is returned unnormalised
    unless ``normalize`` is set."""

    def __init__(self, clip, normalize: bool = False):
        super().__init__()
        self.model = clip.model  # registered, so the metric sees the tower as part of itself
        self.image_processor = clip.image_processor
        self.normalize = normalize
        self.num_features = int(clip.model.config.projection_dim)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from sonic.metrics.clip_scores import pooled
        from sonic.images import to_pil

        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"ClipImageFeatures expects (N, 3, H, W) images, got {tuple(images.shape)}")
        device = next(self.model.parameters()).device
        pixels = self.image_processor(images=to_pil(images), return_tensors="pt")["pixel_values"].to(device)
        features = pooled(self.model.get_image_features(pixel_values=pixels)).float()  # (N, projection_dim)
        if self.normalize:
            features = nn.functional.normalize(features, dim=-1)
        return features.to(images.device)


def _check_images(name: str, images: torch.Tensor) -> None:
    if images.dim() != 4 or images.shape[1] != 3 or not images.dtype.is_floating_point:
        raise ValueError(f"{name} must be float (N, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
    if images.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 {name} images, got {images.shape[0]}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise ValueError(f"{name} images must lie in [0, 1], got [{images.min():.3g}, {images.max():.3g}]")


def fid(generated: torch.Tensor, real: torch.Tensor, feature: nn.Module, batch_size: int = 64) -> float:
    """Fréchet distance (docs/evaluation.md) between the ``feature`` statistics of generated (N, 3, H, W) and real
    (M, 3, H, W) images in [0, 1].

    ``feature`` maps a float image batch in [0, 1] to (B, D) features on the batch's device (CPU here); give it
    an integer ``num_features`` attribute to spare the metric a 299x299 probe. Mean and covariance are
    estimated from all images, so N and M should exceed D for full-rank covariances."""
    _check_images("generated", generated)
    _check_images("real", real)
    metric = _metric(feature, normalize=True)
    for images, is_real in ((real, True), (generated, False)):
        for chunk in images.detach().cpu().split(batch_size):
            metric.update(chunk, real=is_real)
    return float(metric.compute())


class PrecomputedFeatures(nn.Module):
    """The identity as a feature network: lets torchmetrics compute FID from features extracted (and cached)
    beforehand. ``update`` then takes (N, D) features where it would take images."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}) features, got {tuple(features.shape)}")
        return features


def fid_from_features(generated: torch.Tensor, real: torch.Tensor) -> float:
    """FID (docs/evaluation.md) from (N, D) generated and (M, D) real features of one feature network, through
    torchmetrics (the same statistics as :func:`fid` on the images those features came from)."""
    if generated.dim() != 2 or real.dim() != 2 or generated.shape[1] != real.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {tuple(generated.shape)} and {tuple(real.shape)}")
    if min(len(generated), len(real)) < 2:
        raise ValueError(f"FID needs at least 2 feature rows per set, got {len(generated)} and {len(real)}")
    metric = _metric(PrecomputedFeatures(real.shape[1]))
    metric.update(real.detach().double().cpu(), real=True)
    metric.update(generated.detach().double().cpu(), real=False)
    return float(metric.compute())


class InceptionFeatures(nn.Module):
    """The standard FID network (:class:`sonic.metrics.inception.FidInceptionV3`, 2048-d pool features, the same
    numbers as torchmetrics / torch-fidelity) from a local weights file (``pt_inception-2015-12-05-6726825d.pth``):
    images in [0, 1] -> (N, 2048)."""

    num_features = 2048

    def __init__(self, weights: str):
        super().__init__()
        from pathlib import Path

        from sonic.metrics.inception import FidInceptionV3

        if not Path(weights).is_file():
            raise FileNotFoundError(f"models.fid_features: {weights} is not a file (expected the FID Inception weights)")
        self.net = FidInceptionV3.from_file(weights)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.net.parameters()).device
        return self.net((images.clamp(0, 1) * 255).byte().to(device)).reshape(len(images), -1).float().cpu()


class FidNetFeatures(nn.Module):
    """The demo profile's FID network (:mod:`sonic.metrics.fidnet`, trained by ``sonic pretrain fid``) from its
    folder: (N, 3, H, W) images in [0, 1] -> (N, num_features) pooled features on the images' device; the
    classifier head is not used. Images of another size are resized (bilinear, antialiased) to the size it was
    trained at, as the FID Inception resizes to 299."""

    def __init__(self, folder: str):
        super().__init__()
        from sonic.metrics.fidnet import load_fidnet

        self.net, self.classes = load_fidnet(folder)
        self.image_size = self.net.config.image_size
        self.num_features = self.net.config.num_features
        self.train(False)

    def train(self, mode: bool = True) -> FidNetFeatures:
        return super().train(False)  # BatchNorm with its running statistics, always (see the module docstring)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"FidNetFeatures expects (N, 3, H, W) images, got {tuple(images.shape)}")
        device = next(self.net.parameters()).device
        x = images.to(device=device, dtype=torch.float32).clamp(0, 1)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        return self.net.features(x).to(images.device)
