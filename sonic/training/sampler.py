"""Stage-1 batches (paper §3.3): per anchor clip a0, one positive a1 of the same class and N negatives of other
classes, all drawn from one seeded generator so a batch is a function of (seed, step)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ContrastiveBatch:
    anchors: torch.Tensor  # (B,) clip indices
    positives: torch.Tensor  # (B,) same class as the anchor, never the anchor itself
    negatives: torch.Tensor  # (B, N) other classes, distinct within a row

    def unique(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The distinct clips of the batch and, for anchors / positives / negatives, their rows in it
        (so each clip goes through the projector once)."""
        every = torch.cat([self.anchors, self.positives, self.negatives.flatten()])
        clips, inverse = torch.unique(every, return_inverse=True)
        b = len(self.anchors)
        return clips, inverse[:b], inverse[b : 2 * b], inverse[2 * b :].view_as(self.negatives)


class ContrastiveSampler:
    """Draws anchors uniformly from the clips whose class has at least two clips.

    ``num_negatives`` is capped at the smallest number of other-class clips any anchor has (the paper's N = 128,
    "fewer when the dataset has fewer"); :attr:`num_negatives` is the value used.
    """

    def __init__(self, labels: list[str], num_negatives: int):
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.labels = list(labels)
        by_class: dict[str, list[int]] = defaultdict(list)
        for i, label in enumerate(self.labels):
            by_class[label].append(i)
        self.members = {c: torch.tensor(idx) for c, idx in sorted(by_class.items())}
        self.anchor_pool = torch.tensor([i for i, lab in enumerate(self.labels) if len(by_class[lab]) >= 2])
        if len(self.members) < 2:
            raise ValueError(f"stage 1 needs clips of at least two classes, got {sorted(self.members)}")
        if len(self.anchor_pool) == 0:
            raise ValueError("stage 1 needs a class with at least two clips (an anchor and its positive)")
        anchor_classes = {self.labels[i] for i in self.anchor_pool.tolist()}
        fewest_others = min(len(self.labels) - len(self.members[c]) for c in anchor_classes)
        self.num_negatives = min(num_negatives, fewest_others)
        self._label_ids = torch.tensor([sorted(self.members).index(lab) for lab in self.labels])

    def sample(self, batch_size: int, generator: torch.Generator) -> ContrastiveBatch:
        pick = torch.randint(len(self.anchor_pool), (batch_size,), generator=generator)
        anchors = self.anchor_pool[pick]
        positives, negatives = [], []
        for a in anchors.tolist():
            same = self.members[self.labels[a]]
            others = same[same != a]
            positives.append(others[torch.randint(len(others), (1,), generator=generator)])
            pool = torch.nonzero(self._label_ids != self._label_ids[a]).flatten()
            order = torch.randperm(len(pool), generator=generator)[: self.num_negatives]
            negatives.append(pool[order])
        return ContrastiveBatch(anchors, torch.cat(positives), torch.stack(negatives))
