"""The standard FID network without torchvision: Inception-v3 as TensorFlow's 2015-12-05 graph computes it.

FID is defined on the 2048-d pool features of the TF Inception graph, whose PyTorch port is the weights file
``pt_inception-2015-12-05-6726825d.pth`` (``models.fid_features``). torchmetrics reads it through torch-fidelity,
and torch-fidelity imports torchvision when it is imported, which cannot be installed beside the CPU build of torch
this project runs on (docs/paper-profile.md). So the network is written here, from the graph's
definition as torch-fidelity documents it: the module names are the file's keys (they are the format), and the
computation is the TF graph's:

* uint8 images -> float32, resized to 299 x 299 by TF-1.x bilinear interpolation (``align_corners=False``: source
  coordinate ``dst * in / out``, no half-pixel offset, edges clamped), then ``(x - 128) / 128``;
* the stem, Mixed_5b-5d (A), 6a (B), 6b-6e (C), 7a (D), 7b and 7c (E; the last E block max-pools its pool branch,
  every other pool branch averages without counting the padding), global average pool -> 2048 features;
* BatchNorm eps 1e-3, no conv bias, ReLU after every conv; ``fc`` (2048 -> 1008) is kept for the file's keys.

``InceptionFeatures`` in :mod:`sonic.metrics.fid` wraps it; ``tests/metrics/test_inception.py`` pins the layout,
the resize and the features.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sonic.models.io import state_mismatch

INPUT_SIZE = 299


def resize_like_tf1(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) float images as TF 1.x's ``resize_bilinear(align_corners=False)``."""

    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float32) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = src.long()
        return lo, (lo + 1).clamp_max(n_in - 1), src - lo.float()

    (ylo, yhi, dy), (xlo, xhi, dx) = axis(x.shape[2]), axis(x.shape[3])
    top, bottom = x[:, :, ylo], x[:, :, yhi]
    top = top[..., xlo] + (top[..., xhi] - top[..., xlo]) * dx
    bottom = bottom[..., xlo] + (bottom[..., xhi] - bottom[..., xlo]) * dx
    return top + (bottom - top) * dy[:, None]


class Conv(nn.Module):
    """conv (no bias) -> BatchNorm(eps 1e-3) -> ReLU; keys ``conv.weight``, ``bn.*``."""

    def __init__(self, c_in: int, c_out: int, kernel, stride: int = 1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class Branches(nn.Module):
    """A block of parallel branches concatenated on channels. ``spec``: per branch, the (name, c_in, c_out, kernel,
    stride, padding) of its convs in order; a branch whose convs fork (E blocks: ``fork``) ends in two convs applied
    to the same input and concatenated; ``pool``: what the pooling branch does before its 1x1 conv (or alone)."""

    def __init__(self, branches: list[list[tuple]], pool: str, pool_conv: tuple | None, forks: tuple[str, ...] = ()):
        super().__init__()
        # per branch: the convs applied in a chain, then those applied side by side to its output (E blocks)
        self.branches = [([n for n, *_ in convs if n not in forks], [n for n, *_ in convs if n in forks])
                         for convs in branches]
        self.pool = pool
        for convs in branches:
            for name, c_in, c_out, kernel, stride, padding in convs:
                self.add_module(name, Conv(c_in, c_out, kernel, stride, padding))
        self.pool_conv = pool_conv is not None
        if pool_conv is not None:
            self.add_module("branch_pool", Conv(*pool_conv, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for chain, forked in self.branches:
            h = x
            for name in chain:
                h = getattr(self, name)(h)
            out.append(torch.cat([getattr(self, n)(h) for n in forked], 1) if forked else h)
        if self.pool == "avg":
            pooled = _avg_pool(x)
        elif self.pool == "max_same":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:  # "max_down": the reduction blocks' stride-2 max pool, no conv
            pooled = F.max_pool2d(x, 3, stride=2)
        out.append(self.branch_pool(pooled) if self.pool_conv else pooled)
        return torch.cat(out, 1)


def block_a(c_in: int, pool: int) -> Branches:
    return Branches([[("branch1x1", c_in, 64, 1, 1, 0)],
                     [("branch5x5_1", c_in, 48, 1, 1, 0), ("branch5x5_2", 48, 64, 5, 1, 2)],
                     [("branch3x3dbl_1", c_in, 64, 1, 1, 0), ("branch3x3dbl_2", 64, 96, 3, 1, 1),
                      ("branch3x3dbl_3", 96, 96, 3, 1, 1)]], "avg", (c_in, pool))


def block_b(c_in: int) -> Branches:
    return Branches([[("branch3x3", c_in, 384, 3, 2, 0)],
                     [("branch3x3dbl_1", c_in, 64, 1, 1, 0), ("branch3x3dbl_2", 64, 96, 3, 1, 1),
                      ("branch3x3dbl_3", 96, 96, 3, 2, 0)]], "max_down", None)


def block_c(c_in: int, c7: int) -> Branches:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
    return Branches([[("branch1x1", c_in, 192, 1, 1, 0)],
                     [("branch7x7_1", c_in, c7, 1, 1, 0), ("branch7x7_2", c7, c7, row[0], 1, row[1]),
                      ("branch7x7_3", c7, 192, col[0], 1, col[1])],
                     [("branch7x7dbl_1", c_in, c7, 1, 1, 0), ("branch7x7dbl_2", c7, c7, col[0], 1, col[1]),
                      ("branch7x7dbl_3", c7, c7, row[0], 1, row[1]), ("branch7x7dbl_4", c7, c7, col[0], 1, col[1]),
                      ("branch7x7dbl_5", c7, 192, row[0], 1, row[1])]], "avg", (c_in, 192))


def block_d(c_in: int) -> Branches:
    return Branches([[("branch3x3_1", c_in, 192, 1, 1, 0), ("branch3x3_2", 192, 320, 3, 2, 0)],
                     [("branch7x7x3_1", c_in, 192, 1, 1, 0), ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
                      ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 192, 3, 2, 0)]],
                    "max_down", None)


def block_e(c_in: int, pool: str) -> Branches:
    forks = ("branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a", "branch3x3dbl_3b")
    return Branches([[("branch1x1", c_in, 320, 1, 1, 0)],
                     [("branch3x3_1", c_in, 384, 1, 1, 0), ("branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
                      ("branch3x3_2b", 384, 384, (3, 1), 1, (1, 0))],
                     [("branch3x3dbl_1", c_in, 448, 1, 1, 0), ("branch3x3dbl_2", 448, 384, 3, 1, 1),
                      ("branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
                      ("branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0))]], pool, (c_in, 192), forks)


class FidInceptionV3(nn.Module):
    """uint8 (N, 3, H, W) -> (N, 2048) pool features of the FID Inception graph."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = block_a(192, 32), block_a(256, 64), block_a(288, 64)
        self.Mixed_6a = block_b(288)
        self.Mixed_6b, self.Mixed_6c = block_c(768, 128), block_c(768, 160)
        self.Mixed_6d, self.Mixed_6e = block_c(768, 160), block_c(768, 192)
        self.Mixed_7a = block_d(768)
        self.Mixed_7b, self.Mixed_7c = block_e(1280, "avg"), block_e(2048, "max_same")
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"FID Inception: expected uint8 (N, 3, H, W) images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        x = (resize_like_tf1(images.float()) - 128) / 128
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))

    def random_init_(self, seed: int = 0) -> "FidInceptionV3":
        """Random weights with unit-scale activations (a rehearsal's stand-in for the real file): the default
        initialisation, then each BatchNorm's running statistics set to those of one batch of random images."""
        generator = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (4, 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.uint8, generator=generator)
        norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        with torch.no_grad():
            self.train()(images)
        for m in norms:
            m.momentum = 0.1
        return self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> "FidInceptionV3":
        """Load the standard weights file strictly (every key and shape must match)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same error for the user
            raise ValueError(f"{path}: cannot be read as the FID Inception weights ({err})") from err
        model = cls()
        expected = model.state_dict()
        missing, unexpected, wrong = state_mismatch(expected, state)
        if missing or unexpected or wrong:
            raise ValueError(f"{path}: not the FID Inception weights (pt_inception-2015-12-05): missing "
                           f"{missing[:5]}{'...' if len(missing) > 5 else ''} ({len(missing)}), unexpected "
                           f"{unexpected[:5]} ({len(unexpected)}), mis-shaped {wrong[:5]} ({len(wrong)})")
        model.load_state_dict(state, strict=True)
        return model.eval().requires_grad_(False)
