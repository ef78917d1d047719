"""A user's mistake on the command line ends in one line on stderr naming the input, exit 2, no traceback
(``sonic.errors``): missing and unreadable weights, audio, embeddings, images, released checkpoints, score files
and config files."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from sonic.cli import command_name, main
from tests.tiny import AUDIO_DIM, tiny_config_dict


@pytest.fixture(scope="module")
def world(sd_folder, tmp_path_factory):
    """A tiny config, untrained weights, an embedding, an image, and unreadable stand-ins of each."""
    d = tmp_path_factory.mktemp("cli_errors")
    cfg = d / "config.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config_dict(sd_folder)))
    assert main(["init-weights", "--config", str(cfg), "--out", str(d / "w")]) == 0
    np.save(d / "clip.npy", np.zeros(AUDIO_DIM, dtype=np.float32))
    from PIL import Image

    Image.new("RGB", (16, 16), (90, 40, 10)).save(d / "in.png")
    (d / "text.txt").write_text("not media\n")
    (d / "bad_json").mkdir()
    (d / "bad_json" / "config.json").write_text("{not json")
    (d / "bad_tensors").mkdir()
    (d / "bad_tensors" / "config.json").write_text((d / "w" / "config.json").read_text())
    (d / "bad_tensors" / "model.safetensors").write_bytes(b"\x00" * 40)
    return d


def _cases(d: Path) -> dict[str, tuple[list[str], Path | str]]:
    cfg = ["--config", str(d / "config.yaml")]
    gen = ["generate", *cfg, "--seeds", "0", "--steps", "2", "--out", str(d / "out")]
    edit = ["edit", *cfg, "--weights", str(d / "w"), "--steps", "2", "--out", str(d / "e.png")]
    emb = ["--audio", str(d / "clip.npy"), "--embedding"]
    return {
        "generate: missing weights": (gen + ["--weights", str(d / "absent"), *emb], d / "absent"),
        "generate: weights config not JSON": (gen + ["--weights", str(d / "bad_json"), *emb], d / "bad_json"),
        "generate: weights file unreadable": (gen + ["--weights", str(d / "bad_tensors"), *emb], d / "bad_tensors"),
        "generate: missing embedding": (gen + ["--weights", str(d / "w"), "--audio", str(d / "no.npy"),
                                                "--embedding"], d / "no.npy"),
        "generate: embedding not .npy": (gen + ["--weights", str(d / "w"), "--audio", str(d / "text.txt"),
                                                 "--embedding"], d / "text.txt"),
        "edit: missing image": (edit + emb + ["--image", str(d / "no.png")], d / "no.png"),
        "edit: image unreadable": (edit + emb + ["--image", str(d / "text.txt")], d / "text.txt"),
        "import-release: missing checkpoint": (["import-release", "--projector", str(d / "no.pt"), "--adapters",
                                                str(d / "no.pt"), "--out", str(d / "r")], d / "no.pt"),
        "import-release: checkpoint unreadable": (["import-release", "--projector", str(d / "text.txt"),
                                                   "--adapters", str(d / "text.txt"), "--out", str(d / "r")],
                                                  d / "text.txt"),
        "config: missing file": (["params", "--config", str(d / "no.yaml")], d / "no.yaml"),
        "features: missing manifest": (["features", "clap", *cfg, "--manifest", str(d / "no.csv"), "--index",
                                        str(d / "i.csv"), "--out", str(d / "c.safetensors")], d / "no.csv"),
        "train: missing manifest": (["train", "stage1", *cfg, "--manifest", str(d / "no.csv"), "--clap",
                                     str(d / "c"), "--clap-index", str(d / "i"), "--captions", str(d / "x"),
                                     "--out", str(d / "t")], d / "no.csv"),
        "references: not a manifest": (["evaluate", "references", *cfg, "--manifest", str(d / "text.txt"),
                                        "--out", str(d / "ref"), "--index", str(d / "i")], d / "text.txt"),
        "grid: missing manifest": (["evaluate", "grid", "--manifest", str(d / "no.csv"), "--runs",
                                    f"a={d}", "--out", str(d / "g.png")], d / "no.csv"),
        "guidance choice: missing sweep": (["evaluate", "guidance-choice", "--sweeps", str(d / "no.csv"),
                                            "--max-clipped", "0.05", "--out", str(d / "o.json"), "--markdown",
                                            str(d / "o.md")], d / "no.csv"),
        "generate: bad --beta": (gen + ["--weights", str(d / "w"), *emb, "--beta", "up3:0.5"], "up3:0.5"),
        "table: missing scores": (["evaluate", "table", "table1", "--scores", str(d / "no.json"), "--out",
                                   str(d / "t.csv"), "--markdown", str(d / "t.md")], d / "no.json"),
        "table: scores not JSON": (["evaluate", "table", "table1", "--scores", str(d / "text.txt"), "--out",
                                    str(d / "t.csv"), "--markdown", str(d / "t.md")], d / "text.txt"),
    }


CASES = list(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_is_one_line_naming_it_and_exit_2(world, case, capsys):
    argv, path = _cases(world)[case]
    capsys.readouterr()
    assert main(argv) == 2, case
    err = capsys.readouterr().err.strip().splitlines()
    assert err, case
    last = err[-1]
    assert last.startswith(f"sonic {command_name(argv)}: ") and str(path) in last, (case, last)
    assert "Traceback" not in "\n".join(err), case


def test_the_installed_command_prints_no_traceback_and_verbose_does(world):
    argv, path = _cases(world)["generate: embedding not .npy"]
    run = [sys.executable, "-m", "sonic.cli"]
    quiet = subprocess.run(run + argv, capture_output=True, text=True, check=False)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith(f"sonic generate: {path}: not a .npy")
    loud = subprocess.run(run + ["-v"] + argv, capture_output=True, text=True, check=False)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "InputError" in loud.stderr


def test_a_bug_keeps_its_traceback(monkeypatch):
    from sonic.models import commands

    def broken(args):
        raise ValueError("an internal inconsistency")

    monkeypatch.setattr(commands, "run_params", broken)
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(["params", "--config", str(Path(__file__).resolve().parents[1] / "config.yaml")])


def test_the_error_line_names_the_command_as_typed():
    assert command_name(["-v", "train", "stage1", "--config", "c.yaml"]) == "train stage1"
    assert command_name(["generate", "--weights", "w"]) == "generate"


def test_one_line_names_the_path_of_an_os_error():
    from sonic.errors import one_line

    with pytest.raises(OSError) as err:
        Path("/nonexistent/file.wav").read_bytes()
    assert one_line(err.value) == "/nonexistent/file.wav: No such file or directory"
    assert one_line(ValueError("two\nlines")) == "two lines"
