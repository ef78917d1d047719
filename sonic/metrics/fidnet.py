"""The demo profile's FID network: a small image classifier whose pooled features FID compares, as FID compares the
pool features of an ImageNet Inception (docs/pretrained-models.md; SPEC §7, "the demo FID is an
independent judge").

It is trained by ``sonic pretrain fid`` (:mod:`sonic.demo.pretrain.fid`) to tell the synthetic world's scenes
apart, and shares nothing with the networks a generator conditions on (the CLIP text tower inside ``models.sd``,
CLAP) or the CLIPs that AIS, AIC and IIS judge with. On disk, the strict folder format of :mod:`sonic.models.io`:

    <dir>/config.json        {"format": "sonic-fidnet", "version": 1, "architecture": {...}, "classes": [...], ...}
    <dir>/model.safetensors  module-path keys (BatchNorm running statistics included)

Network: images in [0, 1] -> ``2x - 1`` -> a stride-2 stem (conv 3x3, BatchNorm, ReLU) -> one stage per entry of
``widths`` (two conv-BN-ReLU layers, the first with stride 2 after the first stage) -> global average pool
(the features, ``widths[-1]`` of them) -> a linear classifier head, used only in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from sonic.models.io import WEIGHTS_NAME, read_config, state_mismatch, write_folder

FORMAT = "sonic-fidnet"


@dataclass(frozen=True)
class FidNetConfig:
    image_size: int = 64  # input side; other sizes are resized to it (as the FID Inception resizes to 299)
    widths: tuple[int, ...] = (32, 64, 128, 128)  # channels of each stage; the last is the feature dimension
    num_classes: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"fidnet.widths must be one or more channel counts >= 1, got {self.widths}")
        stride = 2 ** len(self.widths)  # the stem and every stage after the first halve the side
        if self.image_size < stride:
            raise ValueError(f"fidnet.image_size {self.image_size} is smaller than the network's stride {stride}")
        if self.num_classes < 2:
            raise ValueError(f"fidnet.num_classes must be >= 2, got {self.num_classes}")

    @property
    def num_features(self) -> int:
        return self.widths[-1]

    def to_dict(self) -> dict:
        return asdict(self) | {"widths": list(self.widths)}


class ConvBN(nn.Module):
    """conv 3x3 (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FidNet(nn.Module):
    def __init__(self, config: FidNetConfig):
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = ConvBN(3, w[0], stride=2)
        self.stages = nn.Sequential(*[
            nn.Sequential(ConvBN(c_in, c_out, stride=1 if i == 0 else 2), ConvBN(c_out, c_out))
            for i, (c_in, c_out) in enumerate(zip((w[0],) + w[:-1], w, strict=True))
        ])
        self.head = nn.Linear(config.num_features, config.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) images in [0, 1] -> (N, num_features) pooled features."""
        x = self.stages(self.stem(images * 2 - 1))  # (N, widths[-1], S / 2**len(widths), same)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.features(images))


def save_fidnet(model: FidNet, path: str | Path, classes: list[str], **metadata) -> Path:
    """Write ``model`` (with its class names, in head order) as a ``sonic-fidnet`` folder."""
    if len(classes) != model.config.num_classes:
        raise ValueError(f"{len(classes)} class names for a head of {model.config.num_classes} classes")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    config = {"format": FORMAT, "version": 1, "architecture": model.config.to_dict(), "classes": list(classes),
              "metadata": metadata}
    return write_folder(path, tensors, config)


def load_fidnet(path: str | Path) -> tuple[FidNet, list[str]]:
    """The network and its class names from a folder written by :func:`save_fidnet`, loaded strictly, in eval
    mode."""
    path = Path(path)
    config = read_config(path, FORMAT, "FID network (sonic pretrain fid)")
    model = FidNet(FidNetConfig(**config["architecture"]))
    state = load_file(str(path / WEIGHTS_NAME))
    missing, unexpected, wrong = state_mismatch(model.state_dict(), state)
    if missing or unexpected or wrong:
        raise ValueError(f"{path / WEIGHTS_NAME}: does not match its config: missing {missing}, unexpected "
                       f"{unexpected}, shape mismatches {wrong}")
    model.load_state_dict(state, strict=True)
    return model.eval(), list(config["classes"])
