"""Image loading and tensor <-> image conversions shared by training, generation, scoring and editing, without
the diffusers import that :mod:`sonic.models.pipeline` carries (scoring and reference jobs never load a UNet)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sonic.errors import InputError


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) in [0, 1] -> PIL images."""
    arr = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().float().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def resize_shorter_side(image: Image.Image, side: int) -> Image.Image:
    """Resize (bicubic) so that the shorter side is ``side`` pixels, keeping the aspect ratio."""
    w, h = image.size
    scale = side / min(w, h)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return image if size == (w, h) else image.resize(size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def open_image(path: str | Path) -> Image.Image:
    """A user's image file as RGB PIL, read now; missing or unreadable -> :class:`~sonic.errors.InputError` naming
    it."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError as err:
        raise InputError(f"{path}: no such image file") from err
    except OSError as err:  # PIL's UnidentifiedImageError is an OSError
        raise InputError(f"{path}: cannot read the image ({err})") from err


def load_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]. With ``size``: resized on the shorter side and centre-cropped to
    ``size`` x ``size`` (the evaluation view of a frame, as training crops it; never squashed)."""
    im = open_image(path)
    if size is not None:
        im = center_crop(resize_shorter_side(im, size), size)
    return np.asarray(im, dtype=np.float32) / 255.0


def load_images(paths: list[str | Path], size: int | None = None) -> torch.Tensor:
    """(N, 3, H, W) float images in [0, 1]: each resized on its shorter side and centre-cropped to ``size`` when
    given, else all must already agree in size."""
    arrays = [load_image(p, size) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}; pass size=")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def image_batches(paths: list[str | Path], size: int, batch_size: int = 32) -> Iterator[torch.Tensor]:
    """:func:`load_images` in chunks of ``batch_size``, so memory does not grow with the number of images."""
    for start in range(0, len(paths), batch_size):
        yield load_images(paths[start : start + batch_size], size)
