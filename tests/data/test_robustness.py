"""Bad inputs written by the synthetic world end up in the rejects table with a specific reason, while every
valid clip is kept (docs/data.md; issue: data preparation, acceptance 3)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from sonic.demo import synth
from sonic.data.datasets import DatasetSpec, index_dataset
from sonic.data.extract import ExtractSettings, extract_videos, level_dbfs

CASES = {
    "greatest_hits": (synth.synth_greatest_hits, ExtractSettings(consecutive_material=True)),
    "landscape": (synth.synth_landscape, ExtractSettings()),
    "ravdess": (synth.synth_ravdess, ExtractSettings(whole_file=True)),
}
EXPECTED_REASON = {
    "truncated": ("ffmpeg failed", "not a readable media file", "no decodable", "too short"),
    "no_audio": ("no audio stream",),
    "silent": ("silent audio",),
    "too_short": ("too short",),
    "zero_bytes": ("empty file (0 bytes)",),
}


def run(dataset: str, root: Path, out: Path):
    spec = DatasetSpec(dataset, dataset, str(root))
    videos, index_rejects = index_dataset(spec)
    rows, rejects = extract_videos(videos, CASES[dataset][1], out, progress=False)
    return {r["clip_id"]: r for r in rows}, index_rejects + rejects


@pytest.mark.parametrize("dataset", sorted(CASES))
def test_bad_inputs_are_rejected_and_nothing_valid_is_lost(dataset, tmp_path):
    root = CASES[dataset][0](tmp_path / "clean", size="smoke", seed=0)
    clean_clips, _ = run(dataset, root, tmp_path / "out_clean")
    dirty_root = tmp_path / "dirty copy été 'q'" / root.name  # odd characters in every path
    shutil.copytree(root, dirty_root)
    bad = synth.synth_bad_inputs(dirty_root, dataset, seed=0)
    dirty_clips, rejects = run(dataset, dirty_root, tmp_path / "out_dirty")

    kinds = {kind for _, kind in bad}
    # Greatest Hits names are fixed (YYYY-MM-DD-HH-MM-SS[-N]); there the odd characters are in the folder above.
    assert kinds >= {"truncated", "no_audio", "silent", "too_short", "zero_bytes"} | (
        set() if dataset == "greatest_hits" else {"odd_name"})
    by_source = {}
    for r in rejects:
        by_source.setdefault(Path(r.source.split("@")[0]).name, []).append(r.reason)
    for rel, kind in bad:
        name = Path(rel).name
        if kind == "odd_name":
            assert any(name.rsplit(".", 1)[0] in c["source"] for c in dirty_clips.values()), f"valid {rel} was dropped"
            continue
        reasons = by_source.get(name)
        assert reasons, f"{kind} input {rel} is not in the rejects table"
        assert any(any(key in reason for key in EXPECTED_REASON[kind]) for reason in reasons), (kind, reasons)
    # Every clean clip survives; the only new clips come from the odd-named valid file.
    assert set(clean_clips) <= set(dirty_clips)
    extra = [c for k, c in dirty_clips.items() if k not in clean_clips]
    assert all(any(Path(rel).stem in c["source"] for rel, kind in bad if kind == "odd_name") for c in extra)
    assert len(extra) >= (dataset != "greatest_hits")


def test_level_dbfs_of_known_waves():
    assert level_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0)
    assert level_dbfs(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0)
    square = np.where(np.arange(1000) % 2, 0.5, -0.5).astype(np.float32)  # RMS 0.5
    assert level_dbfs(square) == pytest.approx(20 * np.log10(0.5))
    assert level_dbfs(np.zeros(10, np.float32)) == -np.inf and level_dbfs(np.zeros(0, np.float32)) == -np.inf
