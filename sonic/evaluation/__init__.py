"""Scoring generated images (docs/evaluation.md): CLIP-based classification and similarities."""
