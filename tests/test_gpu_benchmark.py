"""benchmarks/gpu_paper.py (the paper-size GPU benchmark) runs its three measurements on CPU at tiny size."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_paper_benchmark_runs_at_tiny_size_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("gpu_paper", ROOT / "benchmarks" / "gpu_paper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    results = module.main(["--size", "tiny", "--device", "cpu", "--repeats", "1"])
    assert [r["benchmark"] for r in results] == ["generation", "training", "captioning"]
    for r in results:
        assert r["ours"]["seconds"] > 0 and r["plain"]["seconds"] > 0 and r["ratio"] > 0
        assert r["ours"]["peak_gib"] is None  # no GPU: no device memory to report
    assert '"summary"' in capsys.readouterr().out
    # the paper size is the SD-1.4 UNet, CLIP ViT-L/14 text tower and BLIP-2 OPT-2.7b
    paper = module.SIZES["paper"]
    assert paper.resolution == 512 and paper.steps == 50 and paper.batch == 6
    assert paper.text["hidden_size"] == 768 and paper.blip2["text_hidden"] == 2560
