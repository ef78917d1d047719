"""Scoring generated images (SPEC §4): CLIP-based classification and similarities."""
