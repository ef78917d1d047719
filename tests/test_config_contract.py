"""The configuration contract between the workflow and the `sonic` command (sonic/config.py, rules/common.smk):
the workflow writes nothing at parse time, each job gets exactly the settings its rule declares, and the CLI
resolves a config file to the same settings the workflow passes."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sonic import config

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
SHIPPED = ("Snakefile", "config.yaml", "rules", "workflow", "envs", "sonic")


def checkout_copy(tmp_path: Path) -> Path:
    """The files a workflow run reads from the checkout, copied (the copy can be made read-only)."""
    repo = tmp_path / "checkout"
    repo.mkdir()
    for name in SHIPPED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, repo / name)
    return repo


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def dry_run(repo: Path, workdir: Path, *extra: str, configfiles: tuple[str, ...] = (), read_only: bool = False
            ) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "-n", "-p", "-s", str(repo / "Snakefile"), "-d", str(workdir), *extra, "--configfile",
           str(repo / "config.yaml"), *configfiles]
    if read_only:  # a read-only bind mount of the checkout (root ignores file modes)
        inner = f"mount --bind {repo} {repo} && mount -o remount,ro,bind {repo} && exec {shlex.join(cmd)}"
        cmd = ["unshare", "-m", "sh", "-c", inner]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"PYTHONDONTWRITEBYTECODE": "1"})


def can_mount_read_only() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind / /mnt && umount /mnt"], capture_output=True)
    return probe.returncode == 0


def job_settings(log: str) -> list[dict]:
    """The `--settings` JSON of every job a `snakemake -n -p` log prints."""
    return [json.loads(shlex.split(m.group(1))[0]) for m in re.finditer(r"--settings ('(?:[^']|'\\'')*')", log)]


def test_a_dry_run_writes_nothing_but_snakemakes_own_bookkeeping(tmp_path):
    """With the checkout mounted read-only where the machine allows it (Snakemake's own .snakemake/ goes to the
    working directory, -d)."""
    repo, workdir = checkout_copy(tmp_path), tmp_path / "work"
    workdir.mkdir()
    before = tree(repo)
    out = dry_run(repo, workdir, read_only=can_mount_read_only())
    assert out.returncode == 0, out.stderr[-3000:]
    assert tree(repo) == before, "the dry run changed the checkout"
    written = {str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file()}
    assert written <= {".snakemake/iocache/latest.pkl"}, written  # Snakemake's cache; nothing of ours
    assert job_settings(out.stdout), "no job printed its --settings"


def test_each_job_gets_its_own_runs_settings(tmp_path):
    """Two workflows in one directory with different --config: each job's command carries its own values, and no
    file is shared between them."""
    repo, workdir = checkout_copy(tmp_path), tmp_path / "work"
    workdir.mkdir()
    runs = {}
    for seed in (3, 4):
        out = dry_run(repo, workdir, "--config", f"seed={seed}", f"results=results_{seed}")
        assert out.returncode == 0, out.stderr[-3000:]
        runs[seed] = [s for s in job_settings(out.stdout) if "seed" in s]
    for seed, settings in runs.items():
        assert settings and all(s["seed"] == seed for s in settings), (seed, settings[:2])
    assert not (workdir / ".snakemake" / "sonic").exists()


def test_two_concurrent_workflows_in_one_directory_keep_their_settings(tmp_path):
    repo, workdir = checkout_copy(tmp_path), tmp_path / "work"
    workdir.mkdir()
    procs = {}
    for dim in (64, 96):
        override = tmp_path / f"projector_{dim}.yaml"
        override.write_text(yaml.safe_dump({"results": f"r{dim}", "projector": {"attn_dim": dim, "num_heads": 4}}))
        cmd = [SNAKEMAKE, "--cores", "1", "--nolock", "-s", str(repo / "Snakefile"), "-d", str(workdir),
               f"r{dim}/params.json", "--configfile", str(repo / "config.yaml"), str(override)]
        procs[dim] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for dim, proc in procs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, log[-3000:]
    counts = {dim: json.loads((workdir / f"r{dim}" / "params.json").read_text()) for dim in procs}
    expected = {}
    for dim in procs:
        data = yaml.safe_load((ROOT / "config.yaml").read_text())
        data["projector"] |= {"attn_dim": dim, "num_heads": 4}
        data["models"]["unet_config"] = str(ROOT / data["models"]["unet_config"])
        from sonic.models.params import parameter_counts

        expected[dim] = parameter_counts(config.from_dict(data))["projector"]
    assert counts[64]["projector"] == expected[64] != expected[96] == counts[96]["projector"]


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _contains(full, part, where="") -> list[str]:
    """Where `part` (a job's settings) differs from `full` (the CLI's resolved config)."""
    if isinstance(part, dict):
        return [d for k, v in part.items() for d in (_contains(full[k], v, f"{where}.{k}") if k in full
                                                      else [f"{where}.{k}: not in the CLI's config"])]
    return [] if full == part else [f"{where}: workflow {part!r} != CLI {full!r}"]


def test_the_cli_and_the_workflow_resolve_the_same_config(tmp_path):
    """Every job's --settings equals the same keys of `sonic.config.load` on the same file: defaults are filled in
    one place (a key the file leaves out, e.g. evaluation.batch_size and data.min_hits, included)."""
    repo, workdir = checkout_copy(tmp_path), tmp_path / "work"
    workdir.mkdir()
    smoke = yaml.safe_load((ROOT / "workflow/configs/smoke.yaml").read_text())
    out = dry_run(repo, workdir, "all", "ablations", "results/table2.csv", "guidance",
                  configfiles=(str(repo / "workflow/configs/smoke.yaml"),))
    assert out.returncode == 0, out.stderr[-3000:]
    merged = _merge(yaml.safe_load((ROOT / "config.yaml").read_text()), smoke)
    merged["models"]["unet_config"] = str(repo / merged["models"]["unet_config"])  # the workflow's shipped path
    (tmp_path / "merged.yaml").write_text(yaml.safe_dump(merged))
    cli = config.load(tmp_path / "merged.yaml").to_dict()
    settings = job_settings(out.stdout)
    assert len(settings) > 40
    differences = [d for s in settings for d in _contains(cli, s)]
    assert not differences, differences[:10]
    keys = {k for s in settings for k in s}
    assert {"models", "data", "training", "evaluation", "editing", "generation"} <= keys


def test_the_schema_holds_no_defaults():
    """One place for defaults: the dataclasses of sonic/config.py (the schema checks types and ranges)."""
    text = (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    assert not re.search(r"^\s*default:|[{,]\s*default:", text, re.MULTILINE)


def test_a_setting_the_rule_did_not_declare_is_an_error_naming_it():
    cfg = config.load(ROOT / "config.yaml")
    part = config.from_settings(json.dumps(cfg.select("generation", "data.shards")))
    assert part.generation == cfg.generation and part.data.shards == cfg.data.shards
    with pytest.raises(config.ConfigError, match="reads models"):
        part.models.sd
    with pytest.raises(config.ConfigError, match="reads data.val_fraction"):
        float(part.data.val_fraction)


def test_the_whole_config_round_trips():
    for path in ("config.yaml", "workflow/configs/paper.yaml"):
        cfg = config.load(ROOT / path)
        assert config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
