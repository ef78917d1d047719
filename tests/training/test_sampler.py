"""Stage-1 batches: same-class positives, other-class negatives, capped N, determinism."""

import pytest
import torch

from sonic.training.sampler import ContrastiveSampler

LABELS = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"]  # "d" has one clip: never an anchor, but a negative


def test_positives_share_the_class_and_negatives_do_not():
    sampler = ContrastiveSampler(LABELS, num_negatives=128)
    assert sampler.num_negatives == 6  # class "a" has only 10 - 4 other-class clips
    batch = sampler.sample(64, torch.Generator().manual_seed(0))
    assert batch.negatives.shape == (64, 6)
    seen_negatives = set()
    for a, p, negs in zip(batch.anchors.tolist(), batch.positives.tolist(), batch.negatives.tolist()):
        assert LABELS[a] != "d"
        assert p != a and LABELS[p] == LABELS[a]
        assert len(set(negs)) == len(negs)
        assert all(LABELS[n] != LABELS[a] for n in negs)
        seen_negatives.update(negs)
    assert 9 in seen_negatives  # the singleton class serves as a negative


def test_same_generator_same_batch_and_unique_rows():
    sampler = ContrastiveSampler(LABELS, num_negatives=3)
    b1 = sampler.sample(8, torch.Generator().manual_seed(5))
    b2 = sampler.sample(8, torch.Generator().manual_seed(5))
    assert torch.equal(b1.anchors, b2.anchors) and torch.equal(b1.negatives, b2.negatives)
    clips, a, p, n = b1.unique()
    assert torch.equal(clips[a], b1.anchors) and torch.equal(clips[p], b1.positives)
    assert torch.equal(clips[n], b1.negatives)
    assert len(clips) == len(set(clips.tolist()))


def test_unusable_label_sets_are_refused():
    with pytest.raises(ValueError, match="two classes"):
        ContrastiveSampler(["a", "a"], 4)
    with pytest.raises(ValueError, match="at least two clips"):
        ContrastiveSampler(["a", "b", "c"], 4)
