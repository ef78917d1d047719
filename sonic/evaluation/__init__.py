"""Scoring generated images (README, Evaluation): CLIP-based classification and similarities."""
