"""The Snakemake workflow end to end on the smoke size, in a scratch working directory."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASETS = ("greatest_hits", "landscape", "ravdess")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), *args, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", str(ROOT / "config.yaml"), str(ROOT / "workflow/configs/smoke.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    targets = [f"results/data/{d}/manifest.csv" for d in DATASETS]
    out = snakemake(workdir, *targets)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir, targets


def test_manifests_built_from_nothing(smoke_run):
    workdir, targets = smoke_run
    for target in targets:
        manifest = pd.read_csv(workdir / target)
        assert len(manifest) > 0
        assert set(manifest["split"]) == {"train", "val"}
        assert manifest["eval"].sum() >= 1
        for path in manifest["frame"].head(3).tolist() + manifest["audio"].head(3).tolist():
            assert (workdir / path).is_file(), path


def test_second_invocation_does_nothing(smoke_run):
    workdir, targets = smoke_run
    out = snakemake(workdir, "-n", *targets)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Nothing to be done" in out.stdout + out.stderr
