"""The Snakemake workflow end to end on the smoke size, in a scratch working directory."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASETS = ("greatest_hits", "landscape", "ravdess")


def snakemake(workdir: Path, *args: str, overlays: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    # the venv's bin/ is not on PATH: the rules find `sonic` beside Snakemake's Python (rules/common.smk)
    env = os.environ | {"PATH": os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                                if Path(p) != BIN)}
    cmd = [str(BIN / "snakemake"), *args, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
           "--configfile", str(ROOT / "config.yaml"), str(ROOT / "workflow/configs/smoke.yaml"), *map(str, overlays)]
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


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run as {rule: count}."""
    table = output.split("Job stats:", 1)[1].splitlines()
    counts = {}
    for line in table[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_default_target_encodes_each_dataset_once(tmp_path):
    """The whole DAG of the default target: one CLAP cache and one caption file per dataset, every miniature
    model trained once (a dry run from an empty working directory)."""
    out = snakemake(tmp_path, "-n")
    assert out.returncode == 0, out.stderr[-2000:]
    counts = job_counts(out.stdout + out.stderr)
    assert counts["clap_features"] == len(DATASETS) and counts["captions"] == len(DATASETS)
    for rule in ("train_clip", "train_clap", "train_blip2", "train_sd", "train_fid"):
        assert counts[rule] == 1, rule


def test_variants_share_stage1_runs(tmp_path):
    """All variants of one dataset: stage-1 jobs only where the stage-1 inputs differ (none for no_stage1)."""
    variants = ["full", "no_contrastive", "no_mse", "no_stage1", "projector_frozen_stage2", "single_token",
                "decoder_6_11", "all_layers"]
    targets = [f"results/train/ravdess/{v}/weights" for v in variants]
    out = snakemake(tmp_path, "-n", *targets)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    counts = job_counts(text)
    assert counts["train_stage2"] == len(variants)
    assert counts["train_stage1"] == 4
    runs = sorted(set(re.findall(r"results/train/ravdess/stage1/(\w+)/projector", text)))
    assert runs == ["full", "no_contrastive", "no_mse", "single_token"]
    assert counts["clap_features"] == 1  # the one dataset's CLAP cache, shared by every variant


def test_training_budget_scales_every_training_run_of_one_dataset(tmp_path):
    """training.budget.<dataset> reaches stage 1, stage 2 and both competitors of that dataset, and no other."""
    overlay = tmp_path / "budget.yaml"
    overlay.write_text("training:\n  budget: {ravdess: 3}\n")
    targets = [f"results/train/{d}/{r}/weights" for d in ("ravdess", "landscape") for r in ("full", "AudioToken",
                                                                                              "GlueGen")]
    cmd = [str(BIN / "snakemake"), *targets, "-n", "-p", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(ROOT / "config.yaml"), str(overlay)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    commands = re.findall(r"Shell command: (sonic train .*)", out.stdout + out.stderr)
    assert len(commands) == 8  # stage 1, stage 2 and two competitors per dataset
    for command in commands:
        expected = "--budget 3.0" if "results/data/ravdess/" in command else "--budget 1.0"
        assert expected in command, command


def test_a_misspelt_dataset_or_variant_stops_the_workflow(tmp_path):
    """Names of datasets and variants that are not configured are config errors at parse time (not skipped)."""
    overlay = tmp_path / "typo.yaml"
    overlay.write_text("evaluation:\n  ablation_datasets: [landscpe]\ntraining:\n  run_variants: [ful]\n")
    cmd = [str(BIN / "snakemake"), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(ROOT / "config.yaml"), str(overlay)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "evaluation.ablation_datasets: 'landscpe' is not a dataset" in text, text[-2000:]
    assert "training.run_variants: 'ful' is not a variant" in text


def test_replicates_train_every_table1_method_once_per_training_seed(tmp_path):
    """`replicates` (evaluation.replicates: 3 seeds): one training job per training seed, dataset and Table 1 method
    (stage 1 and stage 2 for SonicDiffusion), the config's seed being the single run's folders, the others
    results/replicates/seed<seed>/; `ablations_replicates` adds Table 4's variants on the ablation datasets."""
    import json
    import shlex
    from collections import Counter

    out = snakemake(tmp_path, "-n", "-p", "replicates")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    jobs = Counter()
    for command in re.findall(r"Shell command: (sonic train .*)", text):
        words = shlex.split(command.split(" > ")[0])
        stage, settings = words[2], json.loads(words[words.index("--settings") + 1])
        dataset = Path(words[words.index("--manifest") + 1]).parent.name
        out_dir = words[words.index("--out") + 1]
        seed = settings["seed"]
        assert out_dir.startswith("results/train/" if seed == 0 else f"results/replicates/seed{seed}/train/"), command
        method = {"stage1": "stage1", "stage2": "SonicDiffusion", "audiotoken": "AudioToken", "gluegen": "GlueGen"}
        jobs[(seed, dataset, method[stage])] += 1
    expected = {(seed, d, m) for seed in (0, 1, 2) for d in DATASETS
                for m in ("stage1", "SonicDiffusion", "AudioToken", "GlueGen")}
    assert set(jobs) == expected and set(jobs.values()) == {1}, jobs
    counts = job_counts(text)
    assert counts["replicate_generate"] == 2 * 3 * len(DATASETS) and counts["replicate_score_table1"] == 2 * 3
    assert counts["generate_eval"] == 3 * len(DATASETS) and counts["table1_replicates"] == 1
    assert "--training-seeds " + " ".join(str(s) for s in (0, 1, 2) for _ in range(3 * len(DATASETS))) in text

    out = snakemake(tmp_path, "-n", "ablations_replicates")
    assert out.returncode == 0, out.stderr[-3000:]
    counts = job_counts(out.stdout + out.stderr)
    # Table 4 (full, no_stage1, projector_frozen_stage2, single_token) on landscape and greatest_hits, seeds 1 and 2;
    # single_token has its own stage 1, projector_frozen_stage2 shares full's, no_stage1 has none
    assert counts["replicate_stage2"] == 4 * 2 * 2 and counts["replicate_stage1"] == 2 * 2 * 2
    assert counts["replicate_score"] == 3 * 2 * 2 and counts["ablation_table_replicates"] == 1


def paper_dry_run(tmp_path: Path, *targets: str, overlay: Path | None = None) -> str:
    """A dry run on the paper configuration (plus ``overlay``); the real model folders and files are stood in for
    by empty ones."""
    for folder in ("stable-diffusion-v1-4", "clap-htsat-unfused", "blip2-opt-2.7b", "clip-vit-base-patch32",
                   "clip-vit-large-patch14"):
        (tmp_path / "models" / folder).mkdir(parents=True, exist_ok=True)
    for file in ("Wav2CLIP.pt", "pt_inception-2015-12-05.pth"):
        (tmp_path / "models" / file).touch()
    cmd = [str(BIN / "snakemake"), *targets, "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(ROOT / "workflow/configs/paper.yaml"), *([str(overlay)] if overlay else [])]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr


def test_paper_profile_with_the_released_weights_adds_their_rows(tmp_path):
    """models.release (placeholder files) adds SonicDiffusion_release to Tables 1 and 2 of the datasets it names:
    import, its own CLAP 2022 features, generation, editing and scoring jobs; the other datasets are untouched."""
    release = tmp_path / "ckpts"
    release.mkdir()
    for name in ("CLAP_weights_2022.pth", "audio_projector_landscape.pth", "landscape.pt", "audio_projector_gh.pth",
                 "greatest_hits.pt"):
        (release / name).touch()
    overlay = tmp_path / "release.yaml"
    overlay.write_text(
        "models:\n"
        f"  msclap_2022: {release}/CLAP_weights_2022.pth\n"
        "  release:\n"
        f"    landscape: {{projector: {release}/audio_projector_landscape.pth, adapters: {release}/landscape.pt}}\n"
        f"    greatest_hits: {{projector: {release}/audio_projector_gh.pth, adapters: {release}/greatest_hits.pt}}\n")
    text = paper_dry_run(tmp_path, "-p", "results/table1.csv", "results/table2.csv", overlay=overlay)
    counts = job_counts(text)
    assert counts["import_release"] == 2 and counts["release_features"] == 2
    assert counts["generate_eval"] == 3 * 3 + 2  # Table 1's trained methods per dataset, and the release on two
    assert counts["score"] == 2 and counts["score_edit_release"] == 2
    assert counts["edit_run"] == 5 * 2
    for dataset in ("landscape", "greatest_hits"):
        assert f"--method SonicDiffusion_release --weights results/release/{dataset} " in text
        assert f"--clap results/features/{dataset}/clap_msclap_2022.safetensors" in text
        assert f"results/scores/SonicDiffusion_release/{dataset}.json" in text
        assert f"results/scores_edit/SonicDiffusion_release/{dataset}.json" in text
    assert "SonicDiffusion_release/ravdess" not in text
    assert '"kind": "msclap_2022"' in text

    overlay.write_text("models:\n  release:\n    landscpe: {projector: a.pth, adapters: b.pt}\n")
    cmd = [str(BIN / "snakemake"), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(ROOT / "workflow/configs/paper.yaml"), str(overlay)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode != 0
    assert "models.release: 'landscpe' is not a dataset" in out.stdout + out.stderr
    assert "needs models.msclap_2022" in out.stdout + out.stderr


def test_rehearsal_runs_every_rule_of_the_paper_dag(tmp_path):
    """workflow/configs/rehearsal.yaml: the paper DAG (with the released weights) rule for rule, plus the jobs that
    write its stand-ins (random-weight models, synthetic media in the real formats), at paper sizes."""
    release = tmp_path / "ckpts"
    release.mkdir()
    for name in ("CLAP_weights_2022.pth", "a.pth", "a.pt", "b.pth", "b.pt"):
        (release / name).touch()
    overlay = tmp_path / "release.yaml"
    overlay.write_text(f"models:\n  msclap_2022: {release}/CLAP_weights_2022.pth\n  release:\n"
                       f"    landscape: {{projector: {release}/a.pth, adapters: {release}/a.pt}}\n"
                       f"    greatest_hits: {{projector: {release}/b.pth, adapters: {release}/b.pt}}\n")
    targets = ("results/table1.csv", "ablations", "results/table2.csv")
    paper = set(job_counts(paper_dry_run(tmp_path / "paper", "-p", *targets, overlay=overlay)))
    cmd = [str(BIN / "snakemake"), *targets, "-n", "-p", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path / "r"),
           "--configfile", str(ROOT / "workflow/configs/rehearsal.yaml")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    rehearsal = set(job_counts(text))
    assert rehearsal - paper == {"rehearsal_models", "synth"} and paper <= rehearsal
    assert "sonic rehearse models" in text and '"resolution": 512' in text
    assert '"num_tokens": 77' in text and '"placement": "mid_and_decoder"' in text


def test_paper_profile_asks_for_gpus(tmp_path):
    """The paper configuration lays out the same training rules, with GPU resources."""
    text = paper_dry_run(tmp_path, "results/train/ravdess/full/weights")
    for rule in ("train_stage1", "train_stage2"):
        block = text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert "gpu=1" in block, rule


def test_paper_profile_dry_runs_every_table(tmp_path):
    """Table 1, the ablations and Table 2 on the paper configuration: every method and variant, GPU jobs."""
    text = paper_dry_run(tmp_path, "results/table1.csv", "ablations", "results/table2.csv")
    counts = job_counts(text)
    assert counts["generate_eval"] == 3 * 3 + 2 * 7  # Table 1: 3 methods x 3 datasets; ablations: 7 variants x 2
    assert counts["score_table1"] == 3 and counts["score"] == 2 * 7
    assert counts["train_competitor"] == 2 * 3
    assert counts["edit_run"] == 4 * 2 and counts["edit_figures"] == 2 and counts["score_edit"] == 2
    assert counts["eval_references"] == 3  # once per dataset, shared by all methods and by editing
    for rule in ("generate_eval", "edit_run", "train_competitor"):
        block = text.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert "gpu=1" in block, rule


@pytest.fixture(scope="module")
def smoke_table1(tmp_path_factory):
    """The whole DAG at smoke size, from nothing to results/table1.csv and the guidance sweep (built once: the
    datasets of your own are added to it below)."""
    import time

    workdir = tmp_path_factory.mktemp("smoke_table1")
    start = time.perf_counter()
    out = snakemake(workdir, "results/table1.csv", "guidance")
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:]
    print(f"smoke DAG to table1 and guidance: {elapsed:.0f} s")
    return workdir


def test_smoke_dag_to_table1(smoke_table1):
    """The whole DAG at smoke size, from nothing to results/table1.csv (synthetic data, miniature models,
    training, competitors, generation, scoring), and in the same run the guidance sweep (`guidance`), which reuses
    Table 1's trained weights and references."""
    import json

    tmp_path = smoke_table1
    table = pd.read_csv(tmp_path / "results/table1.csv")
    assert sorted(table["dataset"].unique()) == sorted(DATASETS)
    assert sorted(table["method"].unique()) == ["AudioToken", "GlueGen", "SonicDiffusion"]
    for metric in ("AIS", "AIC", "SAC", "IIS"):
        assert table[metric].between(0, 1).all(), metric
    assert table["SAC_real"].between(0, 1).all()  # the shape classifier of each dataset's references, on real frames
    assert (table["FID"] >= 0).all() and (table["images"] > 0).all() and (table["missing"] == 0).all()
    assert "| dataset | method | AIS | AIC | SAC | IIS | FID | images |" in (tmp_path / "results/table1.md").read_text()
    # the guidance sweep (workflow/configs/smoke.yaml: scales 1 and 3, one train clip per class) and its choice
    for dataset in DATASETS:
        sweep = pd.read_csv(tmp_path / f"results/figures/guidance_{dataset}.csv")
        assert list(zip(sweep["method"], sweep["guidance"])) == [(m, g) for m in ("SonicDiffusion", "AudioToken",
                                                                                  "GlueGen") for g in (1.0, 3.0)]
        for metric in ("AIC", "SAC", "clipped", "clipped_real"):
            assert sweep[metric].between(0, 1).all(), (dataset, metric)
        assert (sweep["images"] > 0).all()
        for suffix in (".png", "_grid.png"):
            assert (tmp_path / f"results/figures/guidance_{dataset}{suffix}").is_file()
    choice = json.loads((tmp_path / "results/figures/guidance_choice.json").read_text())
    assert choice["guidance_scale"] in (1.0, 3.0) and choice["pairs"] == 3 * len(DATASETS)
    assert "**chosen**" in (tmp_path / "results/figures/guidance.md").read_text()
    # the HTML report of that run shows the table and the loss curves
    report = tmp_path / "report.html"
    out = snakemake(tmp_path, "results/table1.csv", "--report", str(report))
    assert out.returncode == 0, out.stderr[-3000:]
    html = report.read_text(errors="replace")
    assert "table1.csv" in html and "loss.png" in html


def test_own_datasets_join_table1(smoke_table1):
    """Datasets of your own (docs/own_videos.md) added to the smoke run: the synthetic world's videos re-laid as a
    `folder` without labels and a `vggsound` list (the labelled `folder` runs the Landscape path; its layout is
    tested in tests/data). results/table1.csv gains their rows (the one without labels: SonicDiffusion and
    AudioToken with AIS, IIS and FID, no AIC, and the footer saying why) while the demo's datasets and the shared
    miniature models are not rebuilt; the check rule reports the folder."""
    import time

    import yaml

    from tests.data.fixtures import own_datasets_from_world

    workdir = smoke_table1
    own = own_datasets_from_world(workdir / "results/raw", workdir / "own")
    del own["own_folder"]
    overlay = workdir / "own.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"datasets": own}}, allow_unicode=True))
    before = (workdir / "results/demo/models/sd/unet/diffusion_pytorch_model.safetensors").stat().st_mtime
    start = time.perf_counter()
    out = snakemake(workdir, "results/table1.csv", "results/data/own_unlabelled/check.txt", overlays=(overlay,))
    print(f"two own datasets added to the smoke table1: {time.perf_counter() - start:.0f} s")
    assert out.returncode == 0, out.stderr[-3000:]
    counts = job_counts(out.stdout + out.stderr)
    # only the new datasets' jobs (and the table): no synthesis, no pretraining
    assert counts["train_stage2"] == 2 and counts["train_competitor"] == 3 and counts["data_check"] == 1, counts
    assert not {"synth", "train_sd", "train_clip", "train_clap", "train_fid", "train_wav2clip"} & set(counts)
    assert (workdir / "results/demo/models/sd/unet/diffusion_pytorch_model.safetensors").stat().st_mtime == before

    table = pd.read_csv(workdir / "results/table1.csv")
    methods = table.groupby("dataset")["method"].apply(sorted).to_dict()
    for dataset in DATASETS + ("own_vggsound",):
        assert methods[dataset] == ["AudioToken", "GlueGen", "SonicDiffusion"], dataset
    assert methods["own_unlabelled"] == ["AudioToken", "SonicDiffusion"]
    unlabelled = table[table["dataset"] == "own_unlabelled"]
    assert unlabelled["AIC"].isna().all() and unlabelled["SAC"].isna().all()
    for metric in ("AIS", "IIS"):
        assert table[metric].between(0, 1).all(), metric
    assert (table["FID"] >= 0).all() and (table["images"] > 0).all() and (table["missing"] == 0).all()
    labelled = table[table["dataset"] != "own_unlabelled"]
    assert labelled["AIC"].between(0, 1).all()
    md = (workdir / "results/table1.md").read_text()
    assert "own_unlabelled: no labels (the videos sit directly under the dataset's root)" in md

    manifest = pd.read_csv(workdir / "results/data/own_vggsound/manifest.csv")
    assert set(manifest["label"]) == {"fire crackling, popping", "underwater bubbling", "wind noise"}
    assert manifest["label"].isna().sum() == 0 and len(manifest) == 9
    rejects = pd.read_csv(workdir / "results/data/own_vggsound/rejects.csv")
    reasons = dict(zip(rejects["source"].str.rsplit("/", n=1).str[-1], rejects["reason"]))
    assert reasons["vggsound.csv:gone0000000_000020"].startswith("line 10 (wind noise, train): no file")
    assert reasons["unlisted000_000000.mp4"].startswith("not listed in")
    assert pd.read_csv(workdir / "results/data/own_unlabelled/manifest.csv")["label"].isna().all()
    check = (workdir / "results/data/own_unlabelled/check.txt").read_text()
    assert re.search(r"OK: \d+ clips from 7 videos \(no labels\) would be extracted", check), check


def test_a_dataset_without_labels_leaves_out_the_label_conditioned_jobs(tmp_path):
    """A `folder` whose videos sit directly under its root (told from the files at parse time): SonicDiffusion and
    AudioToken are trained and scored, GlueGen is not; its datasets' Table 2 is a config error; a vggsound dataset's
    unknown `labels` too, naming the closest label (dry runs)."""
    import yaml

    loose = tmp_path / "loose"
    loose.mkdir()
    for name in ("a.mp4", "b.mov"):
        (loose / name).write_bytes(b"\x00")  # the DAG is laid out from the names; nothing is read
    vgg = tmp_path / "vgg"
    (vgg / "video").mkdir(parents=True)
    (vgg / "vggsound.csv").write_text('x,0,"dog barking, growling",train\n')
    datasets = {"mine": {"format": "folder", "root": str(loose)},
                "vgg": {"format": "vggsound", "root": str(vgg / "video"), "csv": str(vgg / "vggsound.csv")}}
    overlay = tmp_path / "own.yaml"
    overlay.write_text(yaml.safe_dump({"data": {"datasets": datasets}}))
    out = snakemake(tmp_path, "-n", "-p", "results/table1.csv", overlays=(overlay,))
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    counts = job_counts(text)
    assert counts["score_table1_unlabelled"] == 1 and counts["score_table1"] == len(DATASETS) + 1
    assert counts["train_competitor"] == 2 * (len(DATASETS) + 1) + 1
    assert "results/train/mine/GlueGen" not in text and "results/train/mine/AudioToken" in text
    assert "results/raw/mine" not in text and "results/raw/vgg" not in text  # read from their roots, not synthesised

    (tmp_path / "edit.yaml").write_text("editing:\n  datasets: [mine]\n")
    out = snakemake(tmp_path, "-n", "results/table1.csv", overlays=(overlay, tmp_path / "edit.yaml"))
    assert out.returncode != 0 and "editing.datasets names ['mine'], which have no labels" in out.stdout + out.stderr
    datasets["vgg"]["labels"] = ["dog barkin"]
    overlay.write_text(yaml.safe_dump({"data": {"datasets": datasets}}))
    out = snakemake(tmp_path, "-n", "results/table1.csv", overlays=(overlay,))
    assert out.returncode != 0
    assert "data.datasets.vgg.labels: 'dog barkin' is not a label of" in out.stdout + out.stderr
    assert "(closest: 'dog barking, growling')" in out.stdout + out.stderr
