"""Both stages end to end on tiny models: files written, determinism, which parameters a stage-2 step changes,
the no_stage1 and projector_frozen variants, the CLI."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from sonic import cli

from sonic.models import registry
from sonic.config import ConfigError, from_dict
from sonic.models.io import load_projector, load_weights, read_config
from sonic.training import run
from sonic.training.stage2 import Stage2Model, diffusion_target, prepare_unet
from tests.tiny import AUDIO_DIM, tiny_config_dict, write_clip_folder, write_sd_folder

LABELS = ["red", "green", "blue"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
TRAINING = {
    "checkpoint_every": 2, "checkpoints_total_limit": 1,
    "stage1": {"steps": 3, "batch_size": 4, "lr": 1e-3, "negatives": 4},
    "stage2": {"steps": 2, "batch_size": 2, "lr_adapters": 1e-3, "lr_projector": 1e-3, "resize_scale": 1.25},
    "variants": {"full": {}, "no_stage1": {"stage1": None},
                 "projector_frozen_stage2": {"stage2": {"train_projector": False}}},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny SD folder and one dataset: manifest, CLAP cache + index, captions (3 classes x 3 clips)."""
    root = tmp_path_factory.mktemp("stages")
    sd = write_sd_folder(root / "sd")
    rows, captions = [], []
    for label in LABELS:
        for k in range(3):
            frame = root / "frames" / f"{label}{k}.png"
            frame.parent.mkdir(exist_ok=True)
            img = np.full((20, 24, 3), 100, np.uint8)
            img[4:14, 4 + k:14 + k] = COLOURS[label]
            Image.fromarray(img).save(frame)
            clip_id = f"{label}{k}"
            split = "val" if k == 2 and label == "red" else "train"
            rows.append(f"{clip_id},toy,{label},{frame},,{split}")
            captions.append(f"{clip_id},a photo of a {label} square")
    manifest = root / "toy" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("clip_id,dataset,label,frame,audio,split\n" + "\n".join(rows) + "\n")
    (root / "captions.csv").write_text("clip_id,caption\n" + "\n".join(captions) + "\n")
    g = torch.Generator().manual_seed(0)
    centres = {lab: torch.randn(AUDIO_DIM, generator=g) for lab in LABELS}
    ids = [r.split(",")[0] for r in rows]
    emb = torch.stack([centres[i[:-1]] + 0.1 * torch.randn(AUDIO_DIM, generator=g) for i in ids])
    save_file({"embeddings": emb[[*reversed(range(len(ids)))]].contiguous()}, str(root / "clap.safetensors"))
    (root / "clap_index.csv").write_text("row,clip_id\n" + "\n".join(f"{i},{c}" for i, c in
                                                                      enumerate(reversed(ids))) + "\n")
    cfg = from_dict(tiny_config_dict(sd, training=TRAINING))
    files = dict(manifest=str(manifest), clap=str(root / "clap.safetensors"), clap_index=str(root / "clap_index.csv"))
    return root, cfg, files


@pytest.fixture(scope="module")
def stage1_out(world):
    root, cfg, files = world
    out = root / "s1"
    summary = run.stage1(cfg, "full", captions=str(root / "captions.csv"), out=str(out), **files)
    return out, summary


def test_stage1_writes_a_projector_and_logs(stage1_out, world):
    out, summary = stage1_out
    projector = load_projector(out / "projector")
    assert projector.config.num_tokens == 5 and projector.config.audio_dim == AUDIO_DIM
    assert summary["clips"] == 8 and summary["classes"] == 3 and summary["negatives_used"] == 4
    for name in ("losses.csv", "loss.png", "summary.json", "checkpoint-3"):
        assert (out / name).exists(), name
    header = (out / "losses.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "loss", "infonce", "mse", "lr"]


def test_stage1_without_labels_pairs_the_windows_of_one_video(world, tmp_path):
    """A dataset without labels (a `folder` of videos directly under its root): the positive of an anchor is another
    window of its video, the negatives are windows of the other videos."""
    from sonic.data.tables import read_csv
    from sonic.training.data import load_clip_set

    root, cfg, files = world
    table = read_csv(files["manifest"])
    table["video_id"] = [c[:-1] if c[-1] != "2" else c for c in table["clip_id"]]  # red0+red1 one video, ...
    table["label"] = None
    manifest = tmp_path / "unl" / "manifest.csv"
    manifest.parent.mkdir()
    table.to_csv(manifest, index=False)
    clips = load_clip_set(manifest, files["clap"], files["clap_index"])
    assert not clips.labelled and set(clips.labels) == {""}
    assert clips.contrastive_classes() == clips.videos
    summary = run.stage1(cfg, "full", captions=str(root / "captions.csv"), out=str(tmp_path / "s1"),
                         **(files | {"manifest": str(manifest)}))
    assert summary["labelled"] is False and summary["classes"] == 5  # red, green, blue, green2, blue2


def test_stage1_is_deterministic(stage1_out, world, tmp_path):
    root, cfg, files = world
    out, _ = stage1_out
    run.stage1(cfg, "full", captions=str(root / "captions.csv"), out=str(tmp_path), **files)
    a, b = load_projector(out / "projector").state_dict(), load_projector(tmp_path / "projector").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage2_changes_exactly_the_trainable_parameters(world):
    root, cfg, _ = world
    for train_projector in (True, False):
        sd = registry.load_stable_diffusion(cfg)
        projector = load_projector_like(cfg)
        base = [(p, p.detach().clone()) for p in sd.unet.parameters()]  # the base UNet, before the adapters
        adapters, groups = prepare_unet(sd.unet, "mid_and_decoder", projector, train_projector)
        model = Stage2Model(sd.unet, projector)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        opt = torch.optim.AdamW([{"params": g["params"], "lr": 1e-2} for g in groups])
        text = torch.zeros(2, 77, sd.unet.config.cross_attention_dim)
        for _ in range(2):  # the first step opens the gates (tanh(0) = 0 blocks the other gradients)
            loss = model(torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), text, torch.randn(2, AUDIO_DIM),
                         torch.tensor([True, False])).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        after = model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        adapter_keys = {k for k in before if ".audio." in k}
        projector_keys = {f"projector.{n}" for n, _ in projector.named_parameters()}  # buffers stay as they are
        assert adapter_keys and changed >= adapter_keys
        assert changed == adapter_keys | (projector_keys if train_projector else set())
        # every weight of the base UNet (the text cross-attention included, now inside the wrappers) is untouched
        assert all(torch.equal(p, saved) and not p.requires_grad for p, saved in base)
        assert not any(p.requires_grad for p in sd.vae.parameters())
        assert not any(p.requires_grad for p in sd.text_encoder.parameters())


def load_projector_like(cfg):
    from sonic.models.projector import AudioProjector, ProjectorConfig

    torch.manual_seed(0)
    return AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=32, num_heads=2, attn_dim=16))


def test_stage2_writes_loadable_weights_and_is_deterministic(stage1_out, world, tmp_path):
    root, cfg, files = world
    out1, _ = stage1_out
    summaries = [run.stage2(cfg, "full", projector=str(out1 / "projector"), out=str(tmp_path / f"r{k}"), **files)
                 for k in range(2)]
    assert summaries[0]["resolution"] == 16 and summaries[0]["clips"] == 8
    meta = read_config(tmp_path / "r0" / "weights")
    assert meta["metadata"]["variant"] == "full" and meta["metadata"]["stage"] == "stage2"
    weights = []
    for k in range(2):
        sd = registry.load_stable_diffusion(cfg)
        projector, adapters = load_weights(tmp_path / f"r{k}" / "weights", sd.unet)
        weights.append({**projector.state_dict(), **adapters.state_dict()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert any(abs(g) > 0 for g in summaries[0]["gates"].values())


def test_variants_without_stage1_and_with_frozen_projector(stage1_out, world, tmp_path):
    root, cfg, files = world
    out1, _ = stage1_out
    with pytest.raises(ConfigError, match="needs its stage-1 projector"):
        run.stage2(cfg, "full", projector=None, out=str(tmp_path / "x"), **files)
    with pytest.raises(ConfigError, match="has no stage 1"):
        run.stage1(cfg, "no_stage1", captions=str(root / "captions.csv"), out=str(tmp_path / "y"), **files)
    run.stage2(cfg, "no_stage1", projector=None, out=str(tmp_path / "fresh"), **files)
    run.stage2(cfg, "projector_frozen_stage2", projector=str(out1 / "projector"), out=str(tmp_path / "frozen"),
               **files)
    sd = registry.load_stable_diffusion(cfg)
    frozen, _ = load_weights(tmp_path / "frozen" / "weights", sd.unet)
    stage1 = load_projector(out1 / "projector")
    assert all(torch.equal(v, stage1.state_dict()[k]) for k, v in frozen.state_dict().items())


def test_cli_runs_stage1(world, tmp_path):
    root, cfg, files = world
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(cfg.to_dict()))
    argv = ["train", "stage1", "--config", str(config), "--manifest", files["manifest"], "--clap", files["clap"],
            "--clap-index", files["clap_index"], "--captions", str(root / "captions.csv"), "--out",
            str(tmp_path / "s1"), "--threads", "1"]
    assert cli.main(argv) == 0
    assert (tmp_path / "s1" / "projector" / "model.safetensors").is_file()
    assert cli.main(argv[:2] + ["--variant", "nope"] + argv[2:]) == 2  # unknown variant: a clear config error


def test_quality_check_generates_from_held_out_audio(stage1_out, world, tmp_path):
    root, cfg, files = world
    out1, _ = stage1_out
    clip = write_clip_folder(tmp_path / "clip")
    base = cfg.to_dict()
    raw = base | {"models": base["models"] | {"clip_eval": str(clip)},
                  "training": base["training"] | {"quality_check": {"per_class": 1, "seeds": 2, "steps": 2}}}
    summary = run.stage2(from_dict(raw), "full", projector=str(out1 / "projector"), out=str(tmp_path / "run"), **files)
    result = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert result == summary["quality"]
    assert result["images"] == 2  # the one val clip ("red2") x 2 seeds
    assert result["chance"] == pytest.approx(1 / 3) and 0.0 <= result["accuracy"] <= 1.0
    assert set(result["per_class"]) == {"red"}
    # SAC beside it: the shape classifier fitted on the 8 train frames, scored on the images and the real frame
    assert 0.0 <= result["SAC"] <= 1.0 and set(result["SAC_per_class"]) == {"red"}
    assert result["SAC_real"] in (0.0, 1.0) and "8 training frames of 3 classes" in result["SAC_note"]


def test_stage2_kill_and_resume_matches_an_uninterrupted_run(stage1_out, world, tmp_path, monkeypatch):
    from sonic.training import loop

    root, cfg, files = world
    out1, _ = stage1_out
    base = cfg.to_dict()
    raw = base | {"training": base["training"] | {"stage2": base["training"]["stage2"] | {"steps": 4}}}
    cfg4 = from_dict(raw)
    run.stage2(cfg4, "full", projector=str(out1 / "projector"), out=str(tmp_path / "straight"), **files)

    real = loop.step_generator

    def dies_at_3(seed, step, process=0):
        if step == 3:
            raise KeyboardInterrupt
        return real(seed, step, process)

    monkeypatch.setattr(loop, "step_generator", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        run.stage2(cfg4, "full", projector=str(out1 / "projector"), out=str(tmp_path / "killed"), **files)
    assert not (tmp_path / "killed" / "weights").exists()
    monkeypatch.setattr(loop, "step_generator", real)
    summary = run.stage2(cfg4, "full", projector=str(out1 / "projector"), out=str(tmp_path / "killed"), **files)
    assert summary["resumed_from"] == 2
    states = []
    for name in ("straight", "killed"):
        sd = registry.load_stable_diffusion(cfg4)
        projector, adapters = load_weights(tmp_path / name / "weights", sd.unet)
        states.append({**projector.state_dict(), **adapters.state_dict()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_diffusion_target_follows_the_scheduler():
    from diffusers import DDPMScheduler

    latents, noise, t = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2), torch.tensor([0, 400, 999])
    eps = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    assert torch.equal(diffusion_target(eps, latents, noise, t), noise)
    v = DDPMScheduler.from_config(eps.config, prediction_type="v_prediction")
    a = eps.alphas_cumprod[t][:, None, None, None]
    torch.testing.assert_close(diffusion_target(v, latents, noise, t), a.sqrt() * noise - (1 - a).sqrt() * latents)
    with pytest.raises(ValueError, match="sample"):
        diffusion_target(DDPMScheduler.from_config(eps.config, prediction_type="sample"), latents, noise, t)


def test_two_processes_train_through_accelerate_launch_and_write_one_set_of_weights(world, tmp_path):
    """`--processes 2` (training.resources.gpu: 2) re-runs the command through `accelerate launch --multi_gpu`;
    on this CPU the two processes train data-parallel over gloo and only the main one writes."""
    from sonic.training.commands import launch_command

    root, cfg, files = world
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(cfg.to_dict()))
    argv = ["train", "stage1", "--config", str(config), "--manifest", files["manifest"], "--clap", files["clap"],
            "--clap-index", files["clap_index"], "--captions", str(root / "captions.csv"), "--out",
            str(tmp_path / "s1"), "--threads", "1", "--processes", "2"]
    command = launch_command(2, argv)
    assert command[-len(argv) + 2:] == argv[:-2] and "--processes" not in command[command.index("sonic.cli"):]
    assert cli.main(argv) == 0
    summary = json.loads((tmp_path / "s1" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == TRAINING["stage1"]["steps"]
    assert sorted(p.name for p in (tmp_path / "s1").iterdir() if p.is_dir()) == ["checkpoint-3", "projector"]
    load_projector(tmp_path / "s1" / "projector")
