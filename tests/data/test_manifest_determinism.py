"""Same seed -> byte-identical manifest, rejects and clip files; another seed -> a different manifest."""

import hashlib
from pathlib import Path

import yaml

from sonic import config as config_mod
from sonic.demo import synth
from sonic.data.run import run_extract, run_index, run_manifest

ROOT = Path(__file__).resolve().parents[2]


def build(workdir: Path, seed: int) -> dict[str, str]:
    data = yaml.safe_load((ROOT / "config.yaml").read_text())
    data["seed"] = seed
    raw = workdir / "raw"
    land = synth.synth_landscape(raw, size="smoke", seed=seed)
    wild = synth.synth_into_the_wild(raw, size="smoke", seed=seed)
    data["data"]["datasets"] = {"landscape": {"format": "landscape", "root": str(land), "into_the_wild": str(wild)}}
    data["evaluation"]["ablation_datasets"] = data["editing"]["datasets"] = ["landscape"]  # the only dataset here
    cfg = config_mod.from_dict(data)
    out = workdir / "data"
    run_index(cfg, "landscape", out / "videos.csv", out / "index_rejects.csv")
    shards = [out / "shards" / str(k) for k in range(2)]
    for k, shard in enumerate(shards):
        run_extract(cfg, "landscape", out / "videos.csv", k, 2, shard)
    run_manifest(cfg, "landscape", shards, out / "index_rejects.csv", out / "manifest.csv", out / "rejects.csv")
    return {
        str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path, monkeypatch):
    # Paths in the manifest are relative to the working directory, as in the workflow.
    hashes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        hashes.append(build(Path("."), seed=0))
    assert hashes[0] == hashes[1]
    assert "data/manifest.csv" in hashes[0] and any(k.endswith(".png") for k in hashes[0])
    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    assert build(Path("."), seed=1)["data/manifest.csv"] != hashes[0]["data/manifest.csv"]
