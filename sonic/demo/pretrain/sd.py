"""Miniature Stable Diffusion 1.x for the demo profile: a VAE and an SD-1.x-shaped UNet trained text-to-image on
the synthetic world's (frame, caption) pairs, beside the miniature CLIP's frozen text tower. The measurements
behind each choice: docs/pretrained-models.md.

The output is a Stable Diffusion folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``, each a diffusers or
transformers ``save_pretrained`` folder) that :func:`sonic.models.registry.load_stable_diffusion` reads exactly as it
reads SD-1.4. Recipe, each choice a :class:`SdSettings` field or written here:

* **VAE** (Kingma & Welling 2014; Rombach et al. 2022 §3): a diffusers ``AutoencoderKL`` with three levels
  (downsampling factor 4: 64x64x3 frames -> 16x16x4 latents), trained with an L1 + L2 reconstruction loss and a
  small KL weight on random ``vae_crop`` crops with horizontal flips (the network is convolutional up to the
  mid-block attention, and a crop costs a quarter of a frame). After training, ``quant_conv`` and
  ``post_quant_conv`` absorb a per-channel standardisation of the latent means and the posterior is made narrow
  (:func:`fix_posterior_std`), so a posterior sample is close to its mean, as with SD's VAE.
  **The decoder learns on noisy latents** (``vae_decoder_noise``: Gaussian noise of a random level up to 0.4 x the
  latent std, per sample): a decoder trained on exact posterior means turns the small errors of generated latents
  into coloured speckle (noise of 0.1 x std already does); trained on noisy latents, it absorbs them.
* **UNet**: an SD-1.x-shaped ``UNet2DConditionModel`` from the given architecture JSON (SD-1.4's block types and
  counts, so layer numbering and Plug-and-Play indices hold; heads 1, 2, 4, 4, i.e. one head width of 32 at every
  level, as SD-2.x keeps its head width constant) under SD-1.x's ``scaled_linear`` schedule
  (0.00085 .. 0.012, 1000 steps), with Min-SNR-gamma loss weights (Hang et al. 2023) for faster convergence.
  **Deviation: it predicts v** (Salimans & Ho 2022, as SD-2.x does; ``prediction_type`` in the scheduler config,
  which the pipeline and stage 2 follow) instead of SD-1.x's epsilon. With a few hundred CPU steps an epsilon
  model's error at high noise is multiplied by ``1 / sqrt(alpha_bar)`` (~15 at t = 999) in its x0 estimate and
  the sampler ends in noise (``prediction_type="epsilon"`` restores SD-1.x's parameterisation).
  Texts: the reference caption, or with small probabilities the class phrase ("a landscape with thunder") or the
  raw label ("thunder", the text prompt of the editing baselines), or the empty prompt with probability
  ``empty_prob`` (classifier-free guidance, Ho & Salimans 2022). Clips are drawn with weights
  ``count(label) ** -balance_power`` so that one-clip Into-the-Wild tags are learnt too.
* **Latent scale**: ``scaling_factor`` makes the UNet's latents std ``latent_std`` = 0.56 rather than SD's ~1 — a
  shift of the noise schedule towards noise (as SD-3 shifts it for larger images) for the short CPU training.
* **Latents once**: the VAE encodes every training frame once before UNet training, in ``latent_variants``
  versions (the full frame, its mirror image, and random crops of ``crop_scale`` of the side, each mirrored at
  random); the UNet trains on the posterior means of these variants.
* **Text states once**: the frozen text encoder runs once per distinct text, padded to 77 tokens as the pipeline
  pads prompts.
* **Quality**: VAE reconstruction PSNR on the val frames; text-to-image accuracy: images generated for every
  label (DDIM, guidance as the evaluation setting, fewer steps) from a caption prompt and from the class phrase,
  classified zero-shot by the miniature CLIP over their dataset's label strings (as ``sonic.demo.pretrain.clip``
  scores frames).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sonic.demo.pretrain.captions import class_phrase
from sonic.demo.pretrain.data import Pair, load_pairs, load_text_tower
from sonic.images import load_image
from sonic.models.text import encode_prompts
from sonic.settings import SdSettings
from sonic.training.loop import adamw

# SD-1.x noise schedule (the scheduler_config.json of CompVis/stable-diffusion-v1-4)
SD_SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

def _lr_lambda(steps: int, warmup: int):
    def factor(step: int) -> float:  # linear warm-up, cosine decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


@torch.no_grad()
def init_resnet_gains(model: torch.nn.Module, gain: float | None) -> torch.nn.Module:
    """Start every ``ResnetBlock2D``'s second GroupNorm with scale ``gain`` (``None``: leave PyTorch's 1).

    A small gain keeps each residual branch nearly linear and small at first, so the skip path trains like a plain
    convolutional network (the zero-init-residual idea of Goyal et al. 2017); with the default gain the
    GroupNorm-heavy diffusers blocks learn several times slower on a budget of a few hundred steps.
    """
    from diffusers.models.resnet import ResnetBlock2D

    if gain is not None:
        for m in model.modules():
            if isinstance(m, ResnetBlock2D):
                m.norm2.weight.fill_(gain)
    return model


POOL_CHANNELS = 8  # R, G, B, -R, -G, -B, K, -K: one GroupNorm group whose mean is 0 and std ~K/2 for any image
POOL_K = 20.0  # the constant channel; GroupNorm's std varies by < 0.4 % with the image for |RGB| <= 1
POOL_OFFSET = 10.0  # the pre-SiLU shift that makes SiLU linear to 5e-4 on the pass-through channels


BOX_2X2 = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]) / 4
# [1, 2, 1] / 4 in each direction: after a nearest-neighbour doubling, each output pixel takes 3/4 of its own
# source pixel and 1/4 of its neighbour, i.e. linear interpolation (no 4x4 blocks in the decoded image)
TENT_3X3 = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16


@torch.no_grad()
def init_pooling_vae(vae):
    """Initialise an ``AutoencoderKL`` (before training) so that it starts as a 4x4-average-pooling encoder and a
    linear-interpolation decoder: latent channels 0-2 are the pooled RGB image, channel 3 is free for detail.

    Why: a small KL-VAE trained from random weights for a few hundred steps reconstructs luminance but confuses
    hues (green turns brown, purple grey), which is what the miniature CLIP reads; a pooled 16x16 thumbnail keeps
    them (26 dB PSNR, CLIP accuracy unchanged on the synthetic frames), so training starts from there.
    How, through the unmodified diffusers blocks: the first ``POOL_CHANNELS`` feature channels carry
    (R, G, B, -R, -G, -B, K, -K); every residual branch and the mid-block attention start switched off (second
    GroupNorm scale and attention output 0), the downsampling convolutions average 2x2 windows, the upsampling
    convolutions interpolate linearly; the output GroupNorm sees a group of mean 0 and std ~K/2 whatever the image, so with a
    shift of ``POOL_OFFSET`` the SiLU after it is linear and ``conv_out`` undoes the scaling. Every other channel
    keeps its random initialisation (reading from the pass-through channels, never writing to them) and is free to
    learn; the outputs read those channels with weight 0 at first.
    """
    from diffusers.models.attention_processor import Attention
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    cfg = vae.config
    p, k = POOL_CHANNELS, POOL_K
    if min(cfg.block_out_channels) < p or any(c // cfg.norm_num_groups != p for c in cfg.block_out_channels[-1:]):
        raise ValueError(f"pooling init needs GroupNorm groups of exactly {p} channels at the widest level "
                         f"(block_out_channels {cfg.block_out_channels}, norm_num_groups {cfg.norm_num_groups})")
    if any(c // cfg.norm_num_groups != p for c in (cfg.block_out_channels[0], cfg.block_out_channels[-1])):
        raise ValueError(f"pooling init needs {p}-channel GroupNorm groups at the first and last level")
    if cfg.latent_channels < 3 or cfg.in_channels != 3 or cfg.out_channels != 3:
        raise ValueError("pooling init needs RGB images and at least 3 latent channels")
    sign = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0])
    rgb = torch.tensor([0, 1, 2, 0, 1, 2])

    def centre(conv, rows, cols, values):
        conv.weight[rows] = 0.0
        c = conv.weight.shape[-1] // 2
        conv.weight[rows, cols, c, c] = values

    def pass_through(conv, kernel):  # rows 0..p-1 filter their own channel with the given (3, 3) kernel
        conv.weight[:p] = 0.0
        conv.bias[:p] = 0.0
        for i in range(p):
            conv.weight[i, i] = kernel

    for m in vae.modules():
        if isinstance(m, ResnetBlock2D):  # branch off: norm2 scale 0 -> conv2 sees SiLU(0) = 0
            m.norm2.weight.zero_()
            m.norm2.bias.zero_()
            m.conv2.bias.zero_()
            if m.conv_shortcut is not None:
                m.conv_shortcut.weight[:p] = 0.0
                m.conv_shortcut.bias[:p] = 0.0
                m.conv_shortcut.weight[range(p), range(p), 0, 0] = 1.0
        elif isinstance(m, Attention):
            m.to_out[0].weight.zero_()
            m.to_out[0].bias.zero_()
        elif isinstance(m, Downsample2D):
            pass_through(m.conv, BOX_2X2)  # after the (0, 1, 0, 1) pad: a 2x2 mean
        elif isinstance(m, Upsample2D):
            pass_through(m.conv, TENT_3X3)  # after the nearest-neighbour doubling: linear interpolation

    enc, dec = vae.encoder, vae.decoder
    centre(enc.conv_in, range(6), rgb, sign)
    enc.conv_in.bias[:6] = 0.0
    enc.conv_in.bias[6:p] = torch.tensor([k, -k])
    centre(dec.conv_in, range(6), rgb, sign)
    dec.conv_in.bias[:p] = torch.tensor([0.0] * 6 + [k, -k])
    dec.conv_in.weight[p:, 3:] *= 0.1  # the detail channel starts quiet
    sigma = k / 2  # std of the pass-through group: sqrt((2 K^2 + 2 |RGB|^2) / 8) ~ K / 2
    for norm, conv_out in ((enc.conv_norm_out, enc.conv_out), (dec.conv_norm_out, dec.conv_out)):
        norm.weight[:3] = 1.0
        norm.bias[:3] = POOL_OFFSET
        centre(conv_out, range(3), range(3), torch.full((3,), sigma))
        conv_out.bias[:3] = -POOL_OFFSET * sigma
    enc.conv_out.weight[3] *= 0.1  # detail channel: small random features
    enc.conv_out.bias[3] = 0.0
    for quant in (vae.quant_conv, vae.post_quant_conv):
        n = quant.weight.shape[1] if quant is vae.post_quant_conv else cfg.latent_channels
        quant.weight[:n] = 0.0
        quant.bias[:n] = 0.0
        quant.weight[range(n), range(n), 0, 0] = 1.0
    return vae


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _clock() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def _since(start: tuple[float, float]) -> dict[str, float]:
    cpu, wall = _clock()
    return {"cpu_seconds": round(cpu - start[0], 2), "wall_seconds": round(wall - start[1], 2)}


# ---- components --------------------------------------------------------------------------------------------------
def build_vae(settings: SdSettings):
    from diffusers import AutoencoderKL

    n = len(settings.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=settings.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=settings.vae_channels, layers_per_block=settings.vae_layers_per_block,
        norm_num_groups=settings.vae_groups, sample_size=settings.image_size,
    )


def build_unet(architecture: dict):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel.from_config({k: v for k, v in architecture.items() if not k.startswith("_")})


def ddim_scheduler(prediction_type: str = "epsilon"):
    """SD-1.x's sampler settings (as in its ``scheduler/scheduler_config.json``)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD_SCHEDULE, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                         prediction_type=prediction_type)


# ---- VAE ---------------------------------------------------------------------------------------------------------
def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean PSNR (dB) over a batch of images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


@torch.no_grad()
def reconstruct(vae, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Posterior-mode reconstructions of (N, 3, H, W) images in [0, 1]."""
    out = []
    for x in images.split(batch):
        z = vae.encode(x * 2 - 1).latent_dist.mode()
        out.append(((vae.decode(z).sample + 1) / 2).clamp(0, 1))
    return torch.cat(out)


def _train(model: torch.nn.Module, opt, sched, step_fn, steps: int, seed: int, work_dir: str | Path | None,
           desc: str, run_id: str) -> dict:
    """``steps`` steps of the shared training loop (:func:`sonic.training.loop.run`: batches drawn from a generator
    seeded by (seed, step), checkpoints in ``work_dir`` every ``checkpoint_every`` steps and resume from the latest,
    ``losses.csv`` and ``loss.png``, a progress bar); with no ``work_dir`` a temporary folder. Returns the loop's
    summary with the first and last losses."""
    import tempfile

    from sonic.training import loop

    if steps < 1:
        return {"loss_first": None, "final_loss": None}
    settings = loop.LoopSettings(steps=steps, seed=seed, checkpoint_every=max(1, min(100, steps)),
                                 checkpoints_total_limit=1, max_grad_norm=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(work_dir) if work_dir is not None else Path(tmp)
        summary = loop.run(folder, model, opt, sched, step_fn, settings, desc=desc, run_id=run_id)
        rows = loop.read_rows(folder / "losses.csv", steps)
    losses = [float(r["loss"]) for r in rows]
    return {"loss_first": float(np.mean(losses[:10])), "final_loss": float(np.mean(losses[-10:])),
            "resumed_from": summary["resumed_from"]}


def train_vae(images: torch.Tensor, settings: SdSettings, work_dir: str | Path | None = None,
              run_id: str = "") -> tuple[torch.nn.Module, dict]:
    """Train the VAE on (N, 3, S, S) images in [0, 1] through the shared loop (:func:`_train`, checkpoints and resume
    in ``work_dir``); returns it in eval mode with its training figures.

    Loss per pixel: L1 + ``vae_l2_weight`` * L2, plus ``kl_weight`` times the KL per latent element, on random
    ``vae_crop`` crops mirrored at random; from the pooling initialisation (:func:`init_pooling_vae`) unless
    ``vae_pooling_init`` is off. ``scaling_factor`` is not set here (see :func:`latent_scale`).
    """
    s = settings
    start = _clock()
    torch.manual_seed(s.seed)
    vae = build_vae(s)
    vae = init_pooling_vae(vae) if s.vae_pooling_init else init_resnet_gains(vae, s.resnet_gain_init)
    vae.train()
    with torch.no_grad():  # start nearly deterministic: constant posterior log-variance
        c = s.latent_channels
        vae.quant_conv.weight[c:].zero_()
        vae.quant_conv.bias[c:].fill_(s.vae_logvar_init)
    opt = adamw(vae, s.vae_lr, 0.0, betas=s.vae_betas)  # no decay: the VAE starts as a pooling/interpolation map
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(s.vae_steps, s.warmup_steps))
    n, size, crop = images.shape[0], images.shape[-1], s.vae_crop

    def step(model, gen: torch.Generator, _: int):
        idx = torch.randint(0, n, (s.vae_batch_size,), generator=gen)
        ys, xs = torch.randint(0, size - crop + 1, (2, s.vae_batch_size), generator=gen).tolist()
        flip = (torch.rand(s.vae_batch_size, generator=gen) < 0.5).tolist()
        x = torch.stack([
            images[i, :, y:y + crop, x0:x0 + crop].flip(-1) if f else images[i, :, y:y + crop, x0:x0 + crop]
            for i, y, x0, f in zip(idx.tolist(), ys, xs, flip)
        ]) * 2 - 1  # (B, 3, crop, crop) in [-1, 1]
        posterior = model.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        if s.vae_decoder_noise > 0:  # a decoder that tolerates the small errors of generated latents
            level = torch.rand(len(z), 1, 1, 1, generator=gen) * s.vae_decoder_noise * z.detach().std()
            z = z + level * torch.randn(z.shape, generator=gen)
        rec = model.decode(z).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()  # per latent element
        l1, l2 = (rec - x).abs().mean(), (rec - x).pow(2).mean()
        return l1 + s.vae_l2_weight * l2 + s.kl_weight * kl, {"l1": float(l1), "l2": float(l2)}

    trained = _train(vae, opt, sched, step, s.vae_steps, s.seed, work_dir, "vae", run_id)
    vae.eval().requires_grad_(False)
    stats = {
        "parameters": _count(vae),
        "steps": s.vae_steps,
        "batch_size": s.vae_batch_size,
        "crop": crop,
        "lr": s.vae_lr,
        **trained,
        **_since(start),
    }
    return vae, stats


@torch.no_grad()
def encode_posteriors(vae, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std (N, 4, h, w) of (N, 3, S, S) images in [0, 1] (unscaled latent space)."""
    means, stds = [], []
    for x in images.split(batch):
        d = vae.encode(x * 2 - 1).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    return torch.cat(means), torch.cat(stds)


def latent_scale(mean: torch.Tensor, std: torch.Tensor, gen: torch.Generator, target_std: float = 1.0) -> float:
    """SD's ``scaling_factor``: ``target_std`` / std of latent samples of the training set (SD: target 1)."""
    z = mean + std * torch.randn(mean.shape, generator=gen)
    return float(target_std / z.std())


# ---- UNet --------------------------------------------------------------------------------------------------------
@dataclass
class LatentSet:
    """What UNet training reads, computed once (V variants of N clips, T distinct texts)."""

    latents: torch.Tensor  # (V, 4, h, w) posterior means, already multiplied by the scaling factor
    clip_of: torch.Tensor  # (V,) clip index of each variant
    text_states: torch.Tensor  # (T, 77, C) hidden states of every distinct text
    caption_id: torch.Tensor  # (N,) text index of each clip's caption, class phrase and label
    phrase_id: torch.Tensor
    label_id: torch.Tensor
    empty_id: int
    members: torch.Tensor  # (T, V) bool: the variants whose clip a text describes ("" describes all)
    weights: torch.Tensor  # (N,) sampling weight of each clip


def min_snr_weights(alphas_cumprod: torch.Tensor, t: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Min-SNR-gamma loss weights for epsilon prediction: min(SNR, gamma) / SNR (1 when gamma is None)."""
    if gamma is None:
        return torch.ones(t.shape)
    snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
    return snr.clamp(max=gamma) / snr


def reference_noise(noisy: torch.Tensor, alpha_bar: torch.Tensor, reference: torch.Tensor,
                    member: torch.Tensor) -> torch.Tensor:
    """The exact epsilon target of the empirical data distribution of each sample's condition.

    For ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` with ``x0`` drawn from the reference latents ``x_i`` that the
    sample's text describes (``member``, (B, V) bool), ``E[x0 | x_t]`` is the softmax-weighted mean of those
    ``x_i`` with logits ``-|x_t - sqrt(a) x_i|^2 / (2 (1 - a))``; the target is the matching epsilon. This is the
    Stable Target Field of Xu et al. (ICLR 2023) with the whole training set as reference batch: the regression
    target of the DDPM loss without its sampling variance (the minimiser of the loss is unchanged).
    noisy (B, 4, h, w), alpha_bar (B,), reference (V, 4, h, w).
    """
    b = noisy.shape[0]
    x = noisy.reshape(b, -1)  # (B, D)
    ref = reference.reshape(reference.shape[0], -1)  # (V, D)
    sa = alpha_bar.sqrt()[:, None]  # (B, 1)
    dist = (x * x).sum(1, keepdim=True) - 2 * sa * (x @ ref.T) + alpha_bar[:, None] * (ref * ref).sum(1)[None]
    logits = (-dist / (2 * (1 - alpha_bar[:, None]))).masked_fill(~member, float("-inf"))  # (B, V)
    x0 = torch.softmax(logits, dim=1) @ ref  # (B, D)
    return ((x - sa * x0) / (1 - alpha_bar[:, None]).sqrt()).reshape(noisy.shape)


def train_unet(unet, data: LatentSet, settings: SdSettings, work_dir: str | Path | None = None,
               run_id: str = "") -> tuple[torch.nn.Module, dict]:
    """DDPM loss training of ``unet`` (in place) on ``data`` through the shared loop (:func:`_train`, checkpoints and
    resume in ``work_dir``); returns it in eval mode with its figures.

    Each sample: a clip (weights ``data.weights``), one of its variants, a text (caption, or with the settings'
    probabilities the class phrase, the label or ``""``), a timestep uniform in [0, 1000) and Gaussian noise.
    The target is that noise, or with ``reference_targets`` its exact expectation given the noisy latent over the
    training latents the text describes (:func:`reference_noise`).
    """
    from diffusers import DDPMScheduler

    s = settings
    start = _clock()
    noise_schedule = DDPMScheduler(**SD_SCHEDULE)
    alphas_cumprod = noise_schedule.alphas_cumprod
    unet.train().requires_grad_(True)
    opt = adamw(unet, s.unet_lr, s.weight_decay)  # the time embedding is an MLP: decayed like any linear layer
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(s.unet_steps, s.warmup_steps))

    variants_of = [torch.nonzero(data.clip_of == i).flatten() for i in range(len(data.weights))]
    batch = s.unet_batch_size
    p_empty, p_phrase, p_label = s.empty_prob, s.phrase_prob, s.label_prob

    def step(model, gen: torch.Generator, _: int):
        clips = torch.multinomial(data.weights, batch, replacement=True, generator=gen)
        pick = torch.randint(0, 1 << 30, (batch,), generator=gen)
        v = torch.stack([variants_of[c][k % len(variants_of[c])] for c, k in zip(clips.tolist(), pick.tolist())])
        u = torch.rand(batch, generator=gen)
        text = torch.where(u < p_empty, data.empty_id, data.caption_id[clips])
        text = torch.where((u >= p_empty) & (u < p_empty + p_phrase), data.phrase_id[clips], text)
        text = torch.where((u >= p_empty + p_phrase) & (u < p_empty + p_phrase + p_label), data.label_id[clips], text)
        latents = data.latents[v]  # (B, 4, h, w)
        noise = torch.randn(latents.shape, generator=gen)
        t = torch.randint(0, noise_schedule.config.num_train_timesteps, (batch,), generator=gen)
        noisy = noise_schedule.add_noise(latents, noise, t)
        if s.reference_targets:
            noise = reference_noise(noisy, alphas_cumprod[t], data.latents, data.members[text])
        target = noise
        if s.prediction_type == "v_prediction":  # v = sqrt(a) eps - sqrt(1 - a) x0, x0 implied by eps and x_t
            a = alphas_cumprod[t][:, None, None, None]
            x0 = (noisy - (1 - a).sqrt() * noise) / a.sqrt()
            target = a.sqrt() * noise - (1 - a).sqrt() * x0
        pred = model(noisy, t, data.text_states[text]).sample
        w = min_snr_weights(alphas_cumprod, t, s.min_snr_gamma)
        if s.prediction_type == "v_prediction":  # min(SNR, gamma) / (SNR + 1) for v (Hang et al. 2023)
            snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
            w = w * snr / (snr + 1)
        return (w * (pred - target).pow(2).flatten(1).mean(1)).mean(), {}

    trained = _train(unet, opt, sched, step, s.unet_steps, s.seed + 1, work_dir, "unet", run_id)
    unet.eval().requires_grad_(False)
    stats = {
        "parameters": _count(unet),
        "steps": s.unet_steps,
        "batch_size": batch,
        "lr": s.unet_lr,
        "min_snr_gamma": s.min_snr_gamma,
        "reference_targets": s.reference_targets,
        **trained,
        **_since(start),
    }
    return unet, stats


# ---- data --------------------------------------------------------------------------------------------------------
def load_frames(pairs: list[Pair], size: int) -> torch.Tensor:
    """(N, 3, size, size) in [0, 1]."""
    return torch.from_numpy(np.stack([load_image(p.frame, size) for p in pairs])).permute(0, 3, 1, 2).contiguous()


def augmented_frames(full: torch.Tensor, size: int, settings: SdSettings, gen: torch.Generator) -> torch.Tensor:
    """``latent_variants`` versions of each frame, variant-major: the frame, its mirror image, then random square
    crops (side ``crop_scale`` of the frame, random position, random mirror) resized to ``size``."""
    n, big = full.shape[0], full.shape[-1]
    base = F.interpolate(full, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    out = [base, base.flip(-1)]
    lo, hi = settings.crop_scale
    for _ in range(settings.latent_variants - 2):
        crops = []
        for i in range(n):
            side = int(round(big * (lo + (hi - lo) * float(torch.rand(1, generator=gen)))))
            y, x = torch.randint(0, big - side + 1, (2,), generator=gen).tolist()
            c = full[i:i + 1, :, y:y + side, x:x + side]
            if float(torch.rand(1, generator=gen)) < 0.5:
                c = c.flip(-1)
            crops.append(F.interpolate(c, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
        out.append(torch.cat(crops))
    return torch.cat(out).clamp(0, 1)


def caption_prompt(label: str, pairs: list[Pair]) -> str:
    """The most common training caption of a label (its usual brightness word), else the 'bright' caption."""
    counts = Counter(p.caption for p in pairs if p.label == label)
    if not counts:
        return f"a bright photo of {class_phrase(label)}"
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def label_sets(pairs: list[Pair]) -> dict[str, list[str]]:
    sets: dict[str, set[str]] = {}
    for p in pairs:
        sets.setdefault(p.dataset, set()).add(p.label)
    return {d: sorted(v) for d, v in sorted(sets.items())}


# ---- quality -----------------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(unet, vae, text_encoder, tokenizer, scheduler, prompts: list[str], seeds: list[int], steps: int,
             guidance_scale: float, batch_size: int = 32) -> torch.Tensor:
    """Text-to-image (N, 3, H, W) in [0, 1], one image per (prompt, seed), guided against the empty prompt by the
    sampler every generator shares (:class:`sonic.models.sampling.FrozenSDSampler`: DDIM, the starting noise of
    a seed)."""
    from sonic.models.sampling import Conditioning, FrozenSDSampler

    sampler = FrozenSDSampler(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)
    states = sampler.encode_text(list(prompts) + [""])
    cond_all, null = states[:-1], states[-1:]
    out = []
    for start in range(0, len(prompts), batch_size):
        cond = cond_all[start:start + batch_size]
        out.append(sampler.sample(seeds[start:start + batch_size], Conditioning(null.expand(len(cond), -1, -1)),
                                  Conditioning(cond), steps, guidance_scale))
    return torch.cat(out)


def classify(clip_dir: str | Path, images: torch.Tensor, datasets: list[str],
             labels: dict[str, list[str]]) -> list[str]:
    """Zero-shot label of each image by the CLIP in ``clip_dir``, over the label strings of the image's dataset."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from sonic.metrics.clip_scores import zero_shot
    from sonic.models.registry import Clip

    clip = Clip(CLIPModel.from_pretrained(clip_dir).eval(), CLIPTokenizer.from_pretrained(clip_dir),
                CLIPImageProcessor.from_pretrained(clip_dir))
    out = [""] * len(datasets)
    for d, names in labels.items():
        rows = [i for i, dd in enumerate(datasets) if dd == d]
        if rows:
            for i, label in zip(rows, zero_shot(clip, images[rows], names)):
                out[i] = label
    return out


def generation_accuracy(truth: list[str], predicted: list[str], datasets: list[str]) -> dict[str, float]:
    acc, hits = {}, [t == p for t, p in zip(truth, predicted)]
    for d in sorted(set(datasets)):
        sel = [h for h, dd in zip(hits, datasets) if dd == d]
        acc[d] = sum(sel) / len(sel)
    acc["overall"] = sum(hits) / max(1, len(hits))
    return acc


def shape_classifiers(pairs: list[Pair], images: torch.Tensor) -> dict:
    """A :class:`sonic.metrics.shape.ShapeClassifier` per dataset of ``pairs`` (the SAC of the evaluation), fitted
    on its frames ``images`` (N, 3, S, S); datasets with fewer than 2 classes get none."""
    from sonic.metrics.shape import ShapeClassifier

    out = {}
    for d in sorted({p.dataset for p in pairs}):
        rows = [i for i, p in enumerate(pairs) if p.dataset == d]
        names = [pairs[i].label for i in rows]
        if len(set(names)) >= 2:
            out[d] = ShapeClassifier.fit(images[rows], names)
    return out


def shape_accuracy(shapes: dict, images: torch.Tensor, truth: list[str], datasets: list[str]) -> dict[str, float]:
    """SAC per dataset (and overall) of ``images`` against ``truth``, by each dataset's shape classifier."""
    hits, used = [], []
    for d, shape in shapes.items():
        rows = [i for i, dd in enumerate(datasets) if dd == d]
        if rows:
            hits += [p == truth[i] for p, i in zip(shape.predict(images[rows]), rows)]
            used += [d] * len(rows)
    return generation_accuracy([True] * len(hits), hits, used) if hits else {}


def contact_sheet(rows: list[torch.Tensor], path: Path, scale: int = 2) -> None:
    """Rows of (3, S, k * S) image strips, padded to one width, written as a PNG at ``scale`` x (sharp pixels)."""
    from PIL import Image

    width = max(r.shape[-1] for r in rows)
    sheet = torch.cat([F.pad(r, (0, width - r.shape[-1]), value=1.0) for r in rows], dim=1)
    array = (sheet.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(path)


def evaluate(out_dir: Path, clip_dir: str | Path, train_pairs: list[Pair], labels: dict[str, list[str]],
             settings: SdSettings, shapes: dict | None = None) -> dict:
    """Text-to-image accuracy of the saved folder: ``eval_seeds`` images per label and prompt kind, classified
    zero-shot by the miniature CLIP and by the colour-blind ``shapes`` classifiers (SAC); the caption-prompt images
    are written to ``samples.png`` (a row per dataset)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    start = _clock()
    unet = UNet2DConditionModel.from_pretrained(out_dir, subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(out_dir, subfolder="vae").eval()
    text_encoder = CLIPTextModel.from_pretrained(out_dir, subfolder="text_encoder").eval()
    tokenizer = CLIPTokenizer.from_pretrained(out_dir, subfolder="tokenizer")
    scheduler = DDIMScheduler.from_pretrained(out_dir, subfolder="scheduler")
    result: dict = {"eval_steps": settings.eval_steps, "guidance_scale": settings.guidance_scale,
                    "images_per_label": settings.eval_seeds}
    items = [(d, label) for d, names in labels.items() for label in names]
    for kind in ("caption", "class_phrase"):
        prompts, truth, datasets, seeds, shown = [], [], [], [], {}
        for d, label in items:
            prompt = caption_prompt(label, train_pairs) if kind == "caption" else class_phrase(label)
            shown[label] = prompt
            for k in range(settings.eval_seeds):
                prompts.append(prompt)
                truth.append(label)
                datasets.append(d)
                seeds.append(k)
        if not prompts:
            continue
        images = generate(unet, vae, text_encoder, tokenizer, scheduler, prompts, seeds, settings.eval_steps,
                          settings.guidance_scale)
        predicted = classify(clip_dir, images, datasets, labels)
        if kind == "caption":
            contact_sheet([torch.cat(list(images[[i for i, dd in enumerate(datasets) if dd == d]]), dim=-1)
                           for d in labels], out_dir / "samples.png")
        result[kind] = {
            "accuracy": generation_accuracy(truth, predicted, datasets),
            "SAC": shape_accuracy(shapes or {}, images, truth, datasets),
            "errors": [f"{t} -> {p}" for t, p in zip(truth, predicted) if t != p],
            "prompts": shown,
        }
    result.update(_since(start))
    return result


@torch.no_grad()
def standardise_latents(vae, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a per-channel affine map into ``quant_conv`` / ``post_quant_conv`` so that the posterior means of
    ``latents`` (N, 4, h, w) get zero mean and unit std per channel; the decoder sees the same ``z`` as before,
    so reconstructions are unchanged. Returns the channel means and stds that were removed."""
    mu = latents.mean((0, 2, 3))
    sigma = latents.std((0, 2, 3)).clamp_min(1e-6)
    c = len(mu)
    q, pq = vae.quant_conv, vae.post_quant_conv
    q.weight[:c] /= sigma[:, None, None, None]  # mean' = (mean - mu) / sigma
    q.bias[:c] = (q.bias[:c] - mu) / sigma
    q.bias[c:] -= 2 * sigma.log()  # logvar' = logvar - 2 log sigma
    pq.bias += pq.weight[:, :, 0, 0] @ mu  # z = sigma * z' + mu
    pq.weight *= sigma[None, :, None, None]
    return mu, sigma


@torch.no_grad()
def fix_posterior_std(vae, std: float) -> torch.Tensor:
    """Make the encoder's posterior standard deviation the constant ``std`` (in the standardised latent space) by
    setting the log-variance half of ``quant_conv`` to a constant; returns it as a (1, C, 1, 1) tensor.

    Why: with its tiny KL weight the miniature VAE leaves some channels' posterior far wider than the spread of
    their means (the free detail channel of the pooling start: std 2.5 against 1), so a *sample* of the
    posterior, which is what stage 2 encodes as SD training scripts do, would be mostly noise. SD-1.4's posterior
    is narrow (samples ~ means); this makes the miniature one narrow too. Decoding (from the mean) is unchanged.
    """
    c = vae.config.latent_channels
    vae.quant_conv.weight[c:] = 0.0
    vae.quant_conv.bias[c:] = 2 * math.log(std)
    return torch.full((1, c, 1, 1), float(std))


def latent_set(vae, text_encoder, tokenizer, pairs: list[Pair], frames: torch.Tensor,
               settings: SdSettings) -> tuple[LatentSet, float]:
    """Everything UNet training reads, computed once: posterior means of ``latent_variants`` versions of each frame
    (``frames``: (N, 3, 2S, 2S) in [0, 1]; crops are taken at this size, then resized to S) in a latent space
    standardised per channel (:func:`standardise_latents`), the scaling factor (1 / std of latent samples of the
    plain frames), and the text encoder's states of every caption, class phrase, label and ``""``."""
    s = settings
    gen = torch.Generator().manual_seed(s.seed + 2)
    variants = augmented_frames(frames, s.image_size, s, gen)  # (V * N, 3, S, S), variant-major
    mean, std = encode_posteriors(vae, variants)
    n = len(pairs)
    mu, sigma = standardise_latents(vae, mean[:n])
    mean = (mean - mu[None, :, None, None]) / sigma[None, :, None, None]
    std = fix_posterior_std(vae, s.posterior_std).expand_as(mean)
    scaling = latent_scale(mean[:n], std[:n], gen, s.latent_std)
    texts = sorted({""} | {p.caption for p in pairs} | {class_phrase(p.label) for p in pairs} | {p.label for p in pairs})
    tid = {t: i for i, t in enumerate(texts)}
    counts = Counter(p.label for p in pairs)
    clip_of = torch.arange(n).repeat(s.latent_variants)
    members = torch.zeros(len(texts), len(clip_of), dtype=torch.bool)
    members[tid[""]] = True
    for i, p in enumerate(pairs):
        for text in (p.caption, class_phrase(p.label), p.label):
            members[tid[text], clip_of == i] = True
    data = LatentSet(
        latents=mean * scaling,
        clip_of=clip_of,
        text_states=encode_prompts(text_encoder, tokenizer, texts),
        caption_id=torch.tensor([tid[p.caption] for p in pairs]),
        phrase_id=torch.tensor([tid[class_phrase(p.label)] for p in pairs]),
        label_id=torch.tensor([tid[p.label] for p in pairs]),
        empty_id=tid[""],
        members=members,
        weights=torch.tensor([counts[p.label] ** -s.balance_power for p in pairs], dtype=torch.float64),
    )
    return data, scaling


# ---- the whole folder --------------------------------------------------------------------------------------------
def build_sd(train_pairs: list[Pair], val_pairs: list[Pair], clip_dir: str | Path, out_dir: str | Path,
             architecture: dict, settings: SdSettings) -> dict:
    """Train VAE and UNet, write the SD folder and ``quality.json``; returns the quality figures."""
    from transformers import CLIPTokenizer

    s = settings
    start = _clock()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not train_pairs:
        raise ValueError("build_sd: no training pairs")
    if architecture.get("sample_size", 0) * s.vae_scale != s.image_size:
        raise ValueError(f"unet sample_size {architecture.get('sample_size')} x VAE factor {s.vae_scale} "
                         f"!= image_size {s.image_size}")

    text_encoder = load_text_tower(clip_dir)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir)
    if text_encoder.config.hidden_size != architecture.get("cross_attention_dim"):
        raise ValueError(f"text width {text_encoder.config.hidden_size} != unet cross_attention_dim "
                         f"{architecture.get('cross_attention_dim')}")

    # frames: the training size for the VAE, twice that for the UNet's crops
    load_start = _clock()
    train_images = load_frames(train_pairs, s.image_size)
    train_full = load_frames(train_pairs, 2 * s.image_size)
    val_images = load_frames(val_pairs, s.image_size) if val_pairs else train_images[:0]
    load_time = _since(load_start)

    from sonic.training.loop import fingerprint

    work = out / "training"  # the shared loop's checkpoints (removed at the end), losses.csv and loss.png
    run_id = fingerprint([clip_dir], settings=asdict(s), architecture=architecture,
                         clips=[p.clip_id for p in train_pairs])
    vae, vae_stats = train_vae(train_images, s, work / "vae", run_id)
    prep_start = _clock()
    data, scaling = latent_set(vae, text_encoder, tokenizer, train_pairs, train_full, s)
    vae.register_to_config(scaling_factor=scaling)
    prep_time = _since(prep_start)

    torch.manual_seed(s.seed)
    unet, unet_stats = train_unet(init_resnet_gains(build_unet(architecture), s.resnet_gain_init), data, s,
                                  work / "unet", run_id)
    for checkpoint in sorted(work.glob("*/checkpoint-*")):
        shutil.rmtree(checkpoint)

    unet.save_pretrained(out / "unet")
    vae.save_pretrained(out / "vae")
    text_encoder.save_pretrained(out / "text_encoder")
    tokenizer.save_pretrained(out / "tokenizer")
    ddim_scheduler(s.prediction_type).save_pretrained(out / "scheduler")

    latents = data.latents[: len(train_pairs)]
    shapes = shape_classifiers(train_pairs, train_images)
    val_rec = reconstruct(vae, val_images) if len(val_images) else val_images
    val_truth, val_sets = [p.label for p in val_pairs], [p.dataset for p in val_pairs]
    if len(val_images):  # each dataset's first 8 val frames over their reconstructions
        rows = []
        for d in sorted(set(val_sets)):
            idx = [i for i, dd in enumerate(val_sets) if dd == d][:8]
            rows += [torch.cat(list(val_images[idx]), dim=-1), torch.cat(list(val_rec[idx]), dim=-1)]
        contact_sheet(rows, out / "reconstructions.png")
    vae_stats.update({
        "SAC_val_frames": shape_accuracy(shapes, val_images, val_truth, val_sets),
        "SAC_val_reconstructions": shape_accuracy(shapes, val_rec, val_truth, val_sets),
        "psnr_val": psnr(val_rec, val_images) if len(val_images) else None,
        "psnr_train": psnr(reconstruct(vae, train_images), train_images),
        "scaling_factor": scaling,
        "scaled_latent_mean": [round(float(m), 4) for m in latents.mean((0, 2, 3))],
        "scaled_latent_std": [round(float(m), 4) for m in latents.std((0, 2, 3))],
    })
    labels = label_sets(train_pairs + val_pairs)
    quality = {
        "vae": vae_stats,
        "unet": unet_stats,
        "text_to_image": evaluate(out, clip_dir, train_pairs, labels, s, shapes),
        "chance": {d: 1 / len(v) for d, v in labels.items()},
        "labels": labels,
        "n_train": len(train_pairs),
        "n_val": len(val_pairs),
        "text_encoder_parameters": _count(text_encoder),
        "threads": torch.get_num_threads(),
        "load_frames": load_time,
        "prepare_latents": prep_time,
        "train_cpu_seconds": round(vae_stats["cpu_seconds"] + prep_time["cpu_seconds"] + unet_stats["cpu_seconds"], 2),
        "train_wall_seconds": round(vae_stats["wall_seconds"] + prep_time["wall_seconds"]
                                    + unet_stats["wall_seconds"], 2),
        **_since(start),
        "settings": asdict(s),
    }
    (out / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return quality


def settings_from(overrides: SdSettings | dict | None, seed: int = 0, source: str = "pretrain.sd") -> SdSettings:
    """:class:`SdSettings` from the config's ``pretrain.sd`` (already typed, or a mapping of overrides) with the run's
    ``seed``; an unknown key or a bad value is a ``ConfigError`` naming it."""
    from sonic.config import typed

    settings = typed(SdSettings, {} if overrides is None else overrides, source)
    return replace(settings, seed=seed)


def main(manifests: list[str], out_dir: str, clip_dir: str, unet_config: str | Path, seed: int = 0,
         steps: int | None = None, threads: int | None = None, evaluate: bool = True,
         settings: SdSettings | dict | None = None) -> dict:
    """Build the miniature SD folder from the train split of ``manifests`` and the CLIP in ``clip_dir``.

    ``steps``: UNet training steps; the VAE's steps scale with them (same ratio as the defaults).
    ``threads``: torch's CPU thread count (the rule's ``threads:``); ``None`` leaves torch's setting alone.
    ``unet_config``: the UNet architecture JSON (``models.unet_config``).
    ``evaluate``: False skips the text-to-image check (``pretrain.evaluate``; the smoke size turns it off).
    ``settings``: the recipe (``pretrain.sd`` in the config: an :class:`SdSettings` or a mapping of overrides).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if threads is not None:
        torch.set_num_threads(threads)
    settings = settings_from(settings, seed)
    if steps is not None:
        vae_steps = round(steps * settings.vae_steps / max(1, settings.unet_steps))
        settings = replace(settings, unet_steps=steps, vae_steps=vae_steps,
                           warmup_steps=min(settings.warmup_steps, max(1, steps // 10)))
    if not evaluate:
        settings = replace(settings, eval_seeds=0)
    architecture = json.loads(Path(unet_config).read_text())
    train = load_pairs(manifests, ("train",))
    val = load_pairs(manifests, ("val",))
    return build_sd(train, val, clip_dir, out_dir, architecture, settings)
