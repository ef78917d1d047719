"""Miniature pretrained models for the demo profile (docs/pretrained-models.md): trained on the synthetic
world, saved with the same library classes and formats as the real ones, so downstream code cannot tell them apart."""
