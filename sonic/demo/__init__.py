"""The demo profile's scaffolding: the synthetic audio-visual world and the miniature pretrained models trained on
it, written in the formats the paper profile loads (docs/pretrained-models.md)."""
