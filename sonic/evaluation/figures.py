"""Figures of the report: per dataset, a grid of generated images per method beside the ground-truth frames of
the same audios (one row per evaluation clip, seed 0); for editing runs, the same grid beside the source image
that every audio edited."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from sonic.data.tables import read_csv, read_manifest
from sonic.evaluation.runs import image_name


def comparison_grid(manifest: str | Path, runs: dict[str, str | Path], out: str | Path, max_clips: int = 8,
                    cell: int = 96, seed: int = 0, edits: bool = False) -> Path:
    """Rows: up to ``max_clips`` evaluation clips (one per class first); columns: the ground-truth frame, then
    each method's image of that clip (``seed``), a grey cell where a method has no image. With ``edits`` the runs
    are editing runs (``seed`` is the source's index) and the first column is that source image, read from the
    first run's ``manifest.csv``."""
    table = read_manifest(manifest)
    chosen = table[table["eval"].astype(str).str.lower() == "true"]
    firsts = chosen.drop_duplicates("label")
    rows = list(firsts.itertuples(index=False)) + list(chosen.drop(firsts.index).itertuples(index=False))
    rows = rows[:max_clips]
    header, label_w = 18, 110
    first = "ground truth"
    if edits:
        first, made = "source", read_csv(Path(next(iter(runs.values()))) / "manifest.csv")
        source = Path(made.loc[made["seed"] == seed, "source"].iloc[0])
    columns = [first, *runs]
    grid = Image.new("RGB", (label_w + cell * len(columns), header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(grid)
    for j, name in enumerate(columns):
        draw.text((label_w + j * cell + 3, 3), name[:16], fill="black")
    for i, row in enumerate(rows):
        y = header + i * cell
        name = row.label if isinstance(row.label, str) else row.video_id  # a dataset without labels: the video
        draw.text((3, y + cell // 2 - 6), name[:18], fill="black")
        paths = [source if edits else Path(row.frame)]
        paths += [Path(folder) / image_name(row.clip_id, seed) for folder in runs.values()]
        for j, path in enumerate(paths):
            if path.is_file():
                with Image.open(path) as im:
                    grid.paste(im.convert("RGB").resize((cell, cell), Image.BICUBIC), (label_w + j * cell, y))
            else:
                draw.rectangle([label_w + j * cell, y, label_w + (j + 1) * cell - 1, y + cell - 1], fill="#cccccc")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out
