"""Miniature Stable Diffusion (docs/pretrained-models.md): a folder the registry loads and the pipeline
generates from, standardised latents, exact reference targets, determinism, quality.json."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPTextModel, CLIPTokenizer

from sonic.config import from_dict
from sonic.models.adapters import install_adapters
from sonic.models.pipeline import SonicPipeline
from sonic.models.projector import AudioProjector, ProjectorConfig
from sonic.demo.pretrain import sd
from sonic.models.registry import load_stable_diffusion
from tests.tiny import AUDIO_DIM, CROSS_DIM, square_pairs, tiny_config_dict, write_clip_folder

TINY = sd.SdSettings(
    image_size=32, vae_channels=(8, 8, 8), vae_groups=1, vae_steps=3, vae_batch_size=4, vae_crop=16,
    unet_steps=3, unet_batch_size=4, warmup_steps=1, latent_variants=3, eval_seeds=1, eval_steps=2,
)
# SD-1.4's block types and counts at toy widths; sample_size 8 = 32-pixel images through a factor-4 VAE
ARCH = {
    "_class_name": "UNet2DConditionModel", "sample_size": 8, "in_channels": 4, "out_channels": 4,
    "block_out_channels": [16, 32, 32, 32], "layers_per_block": 2, "attention_head_dim": 2, "norm_num_groups": 8,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, "cross_attention_dim": CROSS_DIM,
}


@pytest.fixture(scope="module")
def built(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    clip_dir = write_clip_folder(root / "clip")
    train = square_pairs(root / "frames")
    val = square_pairs(root / "frames", 1, "val", seed=1)
    runs = [sd.build_sd(train, val, clip_dir, root / f"run{k}", ARCH, TINY) for k in range(2)]
    return root, clip_dir, runs


def test_folder_loads_through_the_registry_and_generates(built):
    root, _, runs = built
    cfg = from_dict(tiny_config_dict(root / "run0"))
    parts = load_stable_diffusion(cfg)
    assert parts.unet.config.cross_attention_dim == CROSS_DIM
    assert parts.vae.config.scaling_factor == pytest.approx(runs[0]["vae"]["scaling_factor"])
    sched = parts.scheduler.config
    assert (sched.beta_schedule, sched.beta_start, sched.beta_end) == ("scaled_linear", 0.00085, 0.012)
    assert (sched.clip_sample, sched.set_alpha_to_one, sched.steps_offset) == (False, False, 1)
    assert sched.num_train_timesteps == 1000 and sched.prediction_type == "v_prediction"

    adapters = install_adapters(parts.unet)
    torch.manual_seed(0)
    projector = AudioProjector(ProjectorConfig(audio_dim=AUDIO_DIM, num_tokens=5, token_dim=CROSS_DIM, num_heads=2,
                                               attn_dim=16)).eval()
    pipe = SonicPipeline.from_sd(parts, projector=projector, adapters=adapters)
    images = pipe(torch.randn(1, AUDIO_DIM), prompt="a photo of a red square", seeds=[0], num_inference_steps=2,
                  progress=False)
    assert images.shape == (1, 3, 32, 32)  # sample_size 8 x VAE factor 4
    assert torch.isfinite(images).all() and 0.0 <= images.min() and images.max() <= 1.0


def test_text_encoder_and_tokenizer_are_the_clip_text_tower(built):
    root, clip_dir, _ = built
    saved = CLIPTextModel.from_pretrained(root / "run0" / "text_encoder").state_dict()
    clip = CLIPTextModel.from_pretrained(clip_dir).state_dict()
    assert saved.keys() == clip.keys() and all(torch.equal(saved[k], clip[k]) for k in saved)
    tok = CLIPTokenizer.from_pretrained(root / "run0" / "tokenizer")
    assert tok.get_vocab() == CLIPTokenizer.from_pretrained(clip_dir).get_vocab()


def test_same_seed_same_weights(built):
    root, _, _ = built
    for part in ("unet", "vae"):
        a = load_file(root / "run0" / part / "diffusion_pytorch_model.safetensors")
        b = load_file(root / "run1" / part / "diffusion_pytorch_model.safetensors")
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), part
    trained = load_file(root / "run0" / "unet" / "diffusion_pytorch_model.safetensors")
    torch.manual_seed(TINY.seed)
    fresh = sd.build_unet(ARCH).state_dict()
    assert not torch.equal(fresh["conv_in.weight"], trained["conv_in.weight"])  # training moved the weights


def test_quality_json(built):
    root, _, runs = built
    quality = json.loads((root / "run0" / "quality.json").read_text())
    assert quality == json.loads(json.dumps(runs[0]))
    for key in ("vae", "unet", "text_to_image", "chance", "labels", "train_cpu_seconds", "train_wall_seconds",
                "cpu_seconds", "wall_seconds", "settings"):
        assert key in quality
    assert quality["labels"] == {"toy": ["blue", "green", "red"]}
    assert quality["chance"] == {"toy": pytest.approx(1 / 3)}
    assert quality["vae"]["steps"] == TINY.vae_steps and quality["unet"]["steps"] == TINY.unet_steps
    assert np.isfinite(quality["vae"]["psnr_val"]) and quality["vae"]["scaling_factor"] > 0
    for kind in ("caption", "class_phrase"):
        acc = quality["text_to_image"][kind]["accuracy"]
        assert set(acc) == {"toy", "overall"} and 0.0 <= acc["overall"] <= 1.0
    assert quality["text_to_image"]["caption"]["prompts"]["red"] == "a photo of a red square"
    # the colour-blind SAC of the VAE's reconstructions and of the samples, and the pictures behind them
    assert set(quality["vae"]["SAC_val_reconstructions"]) == {"toy", "overall"}
    assert quality["vae"]["SAC_val_frames"]["toy"] <= 0.5  # toy classes are squares of three colours: colour-blind
    assert 0.0 <= quality["text_to_image"]["caption"]["SAC"]["toy"] <= 1.0
    for png in ("reconstructions.png", "samples.png"):
        assert (root / "run0" / png).stat().st_size > 0
    for part in ("vae", "unet"):
        assert quality[part]["cpu_seconds"] > 0 and quality[part]["wall_seconds"] > 0


def test_main_reads_manifests(built, tmp_path):
    root, clip_dir, _ = built
    pairs = square_pairs(tmp_path / "frames", 2) + square_pairs(tmp_path / "frames", 1, "val", seed=1)
    manifest = tmp_path / "manifest.csv"
    rows = ["clip_id,dataset,label,frame,audio,split"] + [f"{p.clip_id},toy,{p.label},{p.frame},,{p.split}"
                                                          for p in pairs]
    manifest.write_text("\n".join(rows) + "\n")
    arch = tmp_path / "unet.json"
    arch.write_text(json.dumps(ARCH | {"sample_size": 16}))  # the default 64-pixel images, factor-4 VAE
    quality = sd.main([str(manifest)], str(tmp_path / "out"), str(clip_dir), steps=2, unet_config=arch)
    assert quality["unet"]["steps"] == 2 and quality["n_train"] == 6 and quality["n_val"] == 3
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "out" / part).is_dir()


def test_standardised_latents_keep_reconstructions():
    torch.manual_seed(0)
    vae = sd.build_vae(replace(TINY, vae_channels=(8, 8, 8))).eval()
    images = torch.rand(6, 3, 32, 32)
    before = sd.reconstruct(vae, images)
    mean, std = sd.encode_posteriors(vae, images)
    sd.standardise_latents(vae, mean)
    new_mean, new_std = sd.encode_posteriors(vae, images)
    torch.testing.assert_close(sd.reconstruct(vae, images), before, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(new_mean.mean((0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(new_mean.std((0, 2, 3)), torch.ones(4), atol=1e-5, rtol=0)
    scale = mean.std((0, 2, 3))[None, :, None, None]
    torch.testing.assert_close(new_std, std / scale, atol=1e-6, rtol=1e-4)


def test_reference_noise_is_the_exact_posterior_target():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(5, 4, 2, 2, generator=g)
    noise = torch.randn(3, 4, 2, 2, generator=g)
    alpha_bar = torch.tensor([0.999, 0.5, 0.01])
    noisy = alpha_bar.sqrt()[:, None, None, None] * ref[[1, 2, 3]] + (1 - alpha_bar).sqrt()[:, None, None, None] * noise
    # one member: x0 is known, so the target is the noise itself at every noise level
    only = torch.zeros(3, 5, dtype=torch.bool)
    only[0, 1] = only[1, 2] = only[2, 3] = True
    torch.testing.assert_close(sd.reference_noise(noisy, alpha_bar, ref, only), noise, atol=1e-4, rtol=1e-4)
    # all members: almost no noise -> the nearest latent wins; pure noise -> x0 is the mean of the members
    every = torch.ones(3, 5, dtype=torch.bool)
    target = sd.reference_noise(noisy, alpha_bar, ref, every)
    torch.testing.assert_close(target[0], noise[0], atol=1e-3, rtol=1e-3)
    far = torch.tensor([1e-8])
    x0 = ref.mean(0, keepdim=True)
    got = sd.reference_noise(noisy[2:], far, ref, every[2:])
    torch.testing.assert_close(got, (noisy[2:] - far.sqrt() * x0) / (1 - far).sqrt(), atol=1e-4, rtol=1e-4)


def test_min_snr_weights():
    alphas = torch.linspace(0.999, 0.001, 1000)
    t = torch.tensor([0, 500, 999])
    assert torch.equal(sd.min_snr_weights(alphas, t, None), torch.ones(3))
    w = sd.min_snr_weights(alphas, t, 5.0)
    assert (w <= 1).all() and w[0] < 0.01 and w[2] == 1.0


def test_settings_are_checked():
    with pytest.raises(ValueError, match="latent_variants"):
        sd.SdSettings(latent_variants=1)
    with pytest.raises(ValueError, match="vae_crop"):
        sd.SdSettings(vae_crop=30)


def test_saved_vae_has_a_narrow_posterior(built):
    """Samples of the posterior (what stage 2 encodes) are close to its means, as with SD-1.4's VAE."""
    from diffusers import AutoencoderKL

    root, _, _ = built
    vae = AutoencoderKL.from_pretrained(root / "run0", subfolder="vae").eval()
    images = sd.load_frames(square_pairs(root / "check", 1), 32)
    mean, std = sd.encode_posteriors(vae, images)
    torch.testing.assert_close(std, torch.full_like(std, TINY.posterior_std), rtol=1e-4, atol=1e-6)
    assert float(std.mean()) < 0.2 * float(mean.std())


class _Killed(Exception):
    pass


def test_pretraining_resumes_through_the_shared_loop_to_identical_weights(one_thread, tmp_path, monkeypatch):
    """VAE and UNet train through sonic.training.loop: a run killed after a checkpoint and started again ends with
    the weights of the uninterrupted run."""
    from sonic.training import loop

    clip_dir = write_clip_folder(tmp_path / "clip")
    train = square_pairs(tmp_path / "frames")
    settings = replace(TINY, vae_steps=4, unet_steps=4, eval_seeds=0)
    sd.build_sd(train, [], clip_dir, tmp_path / "straight", ARCH, settings)

    real_run = loop.run

    def killed_after_first_checkpoint(out_dir, model, optimizer, scheduler, step_fn, s, **kw):
        def step(m, gen, k):
            if "unet" in str(out_dir) and k == 3:
                raise _Killed
            return step_fn(m, gen, k)
        return real_run(out_dir, model, optimizer, scheduler, step, replace(s, checkpoint_every=2), **kw)

    monkeypatch.setattr(loop, "run", killed_after_first_checkpoint)
    with pytest.raises(_Killed):
        sd.build_sd(train, [], clip_dir, tmp_path / "killed", ARCH, settings)
    assert [k for k, _ in loop.checkpoints(tmp_path / "killed" / "training" / "unet")] == [2]
    monkeypatch.setattr(loop, "run", lambda *a, **kw: real_run(*a[:5], replace(a[5], checkpoint_every=2), **kw))
    quality = sd.build_sd(train, [], clip_dir, tmp_path / "killed", ARCH, settings)
    assert quality["unet"]["resumed_from"] == 2 and quality["vae"]["resumed_from"] == 4
    for part in ("unet", "vae"):
        a = load_file(tmp_path / "straight" / part / "diffusion_pytorch_model.safetensors")
        b = load_file(tmp_path / "killed" / part / "diffusion_pytorch_model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), part
    assert not list((tmp_path / "killed" / "training").glob("*/checkpoint-*"))  # removed once the folder is written
    assert (tmp_path / "killed" / "training" / "unet" / "losses.csv").is_file()


def test_config_schema_lists_every_recipe_setting():
    """pretrain.sd in the schema names exactly the SdSettings fields (seed comes from the top-level seed)."""
    from dataclasses import fields
    from pathlib import Path

    import yaml

    schema = yaml.safe_load((Path(__file__).parents[3] / "workflow/schemas/config.schema.yaml").read_text())
    listed = set(schema["properties"]["pretrain"]["properties"]["sd"]["properties"])
    assert listed == {f.name for f in fields(sd.SdSettings)} - {"seed"}


def test_config_overrides_reach_the_recipe(tmp_path):
    from sonic.config import ConfigError

    cfg = from_dict(tiny_config_dict(tmp_path / "sd", pretrain={"sd": {"vae_steps": 7, "unet_lr": 3e-3}}))
    s = sd.settings_from(cfg.pretrain.sd, seed=5)
    assert (s.vae_steps, s.unet_lr, s.seed) == (7, 3e-3, 5)
    with pytest.raises(ConfigError, match="vae_stepz"):
        sd.settings_from({"vae_stepz": 1})
    with pytest.raises(ConfigError, match="seed"):
        sd.settings_from({"seed": 1})
    with pytest.raises(ConfigError, match="latent_variants"):
        sd.settings_from({"latent_variants": 1})



def _decoder_inputs(monkeypatch, noise: float) -> float:
    """One VAE training step at ``vae_decoder_noise=noise``: the spread of the latents the decoder learns on around
    the posterior means, in units of the posterior's own std (1 for a plain posterior sample)."""
    seen: dict[str, torch.Tensor] = {}
    build = sd.build_vae

    def spied(settings):
        vae = build(settings)
        encode, decode = vae.encode, vae.decode

        def encode_spy(x, *a, **k):
            out = encode(x, *a, **k)
            seen["mean"], seen["std"] = out.latent_dist.mean.detach(), out.latent_dist.std.detach()
            return out

        def decode_spy(z, *a, **k):
            seen["z"] = z.detach()
            return decode(z, *a, **k)

        vae.encode, vae.decode = encode_spy, decode_spy
        return vae

    monkeypatch.setattr(sd, "build_vae", spied)
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    sd.train_vae(images, replace(TINY, vae_steps=1, vae_decoder_noise=noise))
    return float(((seen["z"] - seen["mean"]) / seen["std"]).std())


def test_the_decoder_learns_on_noisy_latents(one_thread, monkeypatch):
    """vae_decoder_noise: the decoder sees the posterior sample plus Gaussian noise of a random level up to that
    share of the latents' std; at 0 it sees the posterior sample alone."""
    plain, noisy = _decoder_inputs(monkeypatch, 0.0), _decoder_inputs(monkeypatch, 2.0)
    assert 0.9 < plain < 1.1, plain
    assert noisy > 2.0, noisy
