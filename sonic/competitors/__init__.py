"""The trained competitors of Table 1 (docs/competitors.md) on SonicDiffusion's stack: the same frozen SD, the same
cached CLAP embeddings, the same training loop (:func:`sonic.training.loop.run`) and budget.

* ``audiotoken`` — :mod:`sonic.competitors.audiotoken` (Yariv et al. 2023): one audio token in "a photo of *".
* ``gluegen`` — :mod:`sonic.competitors.gluegen` (Qin et al. 2023): audio translated into the text encoder's
  output space.

Settings come from ``competitors.<method>.*`` (unknown keys are errors); the defaults equal the demo
SonicDiffusion stage-2 budget (200 steps, batch 16, lr 1e-3, weight decay 1e-2); the loop settings
(``checkpoint_every``, ``checkpoints_total_limit``, ``mixed_precision``, ``max_grad_norm``) and the seed are the
ones SonicDiffusion trains with (``training.*``, ``seed``).

The names below resolve on first use (:mod:`sonic.competitors.run` and the methods' modules), so the CLI's
``sonic train audiotoken --help`` does not import torch, diffusers and PEFT.
"""

from sonic.lazy import lazy_attributes

_LAZY = {
    "sonic.competitors.run": ("METHODS", "SETTINGS", "load_generator", "settings", "train"),
    "sonic.competitors.audiotoken": ("AudioTokenGenerator",),
    "sonic.competitors.gluegen": ("GlueGenGenerator",),
    "sonic.competitors.common": ("TextConditionedGenerator",),
}

__all__ = sorted(name for names in _LAZY.values() for name in names)

__getattr__ = lazy_attributes(__name__, _LAZY)
