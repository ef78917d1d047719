"""The `sonic` command: params on the paper architecture, and generate end to end on a tiny SD folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sonic.cli import build_parser, main
from tests.tiny import AUDIO_DIM, tiny_config_dict

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_has_help():
    parser = build_parser()
    for name in parser._subparsers._group_actions[0].choices:
        out = subprocess.run([sys.executable, "-m", "sonic.cli", name, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: sonic" in out.stdout, name


def test_params_on_the_paper_configuration(capsys):
    assert main(["params", "--config", str(ROOT / "workflow/configs/paper.yaml")]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert 850e6 <= counts["unet"] <= 870e6  # SD-1.4 UNet: ~860M
    assert 24e6 <= counts["adapters"] <= 30e6  # paper: 26M
    assert 5e6 <= counts["projector"] <= 10e6  # paper: 8M
    assert len(counts["adapter_layers"]) == 10


def test_generate_end_to_end(sd_folder, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(sd_folder)))
    assert main(["init-weights", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 0
    emb = tmp_path / "clip.npy"
    np.save(emb, np.random.default_rng(0).standard_normal(AUDIO_DIM).astype(np.float32))
    args = ["generate", "--config", str(cfg), "--weights", str(tmp_path / "w"), "--audio", str(emb), "--embedding",
            "--seeds", "0", "1", "--beta", "up3=0.5", "--text", "a cube", "--out"]
    assert main(args + [str(tmp_path / "a")]) == 0
    assert main(args + [str(tmp_path / "b")]) == 0
    for seed in (0, 1):
        a = np.asarray(Image.open(tmp_path / "a" / f"clip_{seed}.png"))
        assert a.shape == (16, 16, 3)
        assert np.array_equal(a, np.asarray(Image.open(tmp_path / "b" / f"clip_{seed}.png")))


def test_config_errors_exit_2_with_the_key(tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(tmp_path / "absent")))
    assert main(["init-weights", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 2
    assert "models.sd" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["all"])
def test_workflow_dry_run(target, tmp_path):
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "--quiet", "rules", target,
                          "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--configfile", str(ROOT / "config.yaml")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_evaluation_step_takes_the_rules_threads():
    """The evaluation rules pass --threads to each `sonic evaluate` step that runs models."""
    from sonic.cli import build_parser

    common = ["--config", "c.yaml", "--threads", "1"]
    argv = {
        "references": ["--manifest", "m", "--out", "o", "--index", "i"],
        "generate": ["--method", "GlueGen", "--weights", "w", "--manifest", "m", "--clap", "c", "--clap-index", "i",
                     "--out", "o"],
        "score": ["--method", "m", "--dataset", "d", "--manifest", "m", "--references", "r", "--references-index",
                  "i", "--images", "f", "--out", "o"],
        "edit": ["--method", "PnP", "--weights", "w", "--manifest", "m", "--clap", "c", "--clap-index", "i",
                 "--inversions", "k", "--out", "o"],
        "guidance": ["--dataset", "d", "--method", "GlueGen", "--weights", "w", "--manifest", "m", "--clap", "c",
                     "--clap-index", "i", "--references", "r", "--references-index", "j", "--images", "f", "--out",
                     "o", "--figure", "p", "--grid", "g"],
        "figures": ["--weights", "w", "--manifest", "m", "--generated", "g", "--fig10", "f", "--fig10-json", "j",
                    "--norms-csv", "c", "--norms-png", "p"],
    }
    for step, args in argv.items():
        parsed = build_parser().parse_args(["evaluate", step, *args, *common])
        assert parsed.threads == 1 and parsed.step == step


def test_table_step_runs_without_threads(tmp_path):
    """`sonic evaluate table` takes no --threads (it runs no model) and still runs through main()."""
    import json as json_mod

    from sonic.cli import main

    score = {"dataset": "ravdess", "method": "SonicDiffusion", "AIS": 0.5, "AIC": 0.25, "IIS": 0.5, "FID": 10.0,
             "images": 4, "missing": 0}
    (tmp_path / "s.json").write_text(json_mod.dumps(score))
    assert main(["evaluate", "table", "table1", "--scores", str(tmp_path / "s.json"), "--out",
                 str(tmp_path / "t.csv"), "--markdown", str(tmp_path / "t.md")]) == 0
    assert "| ravdess | SonicDiffusion | 0.5000 | 0.2500 |" in (tmp_path / "t.md").read_text()
