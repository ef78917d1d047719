"""DDIM inversion of a source image for Plug-and-Play editing (paper §3.5; supp. §3.2).

The source image is encoded by the VAE and run *up* the DDIM schedule with the empty prompt through the base
UNet, adapters off (the UNet is called without ``audio_tokens``, which leaves every gated layer exactly at its
text-only output). The latent of every step is kept: ``latents[k]`` is x_k, from x_0 (the encoded image) to x_T
(the start of sampling). Sampling step ``i`` (timestep ``scheduler.timesteps[i]``) works at the noise level of
``latents[T - i]``.

Inversion step k mirrors DDIM's step: it goes from the level ``t - ratio`` to the level ``t`` of the k-th
ascending timestep, with epsilon evaluated at (x_{k-1}, t), the usual approximation (Song et al. 2021; Mokady et
al. 2023). A UNet that predicts v (the miniature demo UNet) or x_0 is converted to epsilon for this update; the
scheduler handles the model's own output during denoising.

:class:`InversionCache` keeps trajectories as safetensors files keyed by a hash of the image, the number of steps
and the model's identity, so that one inversion serves every audio an image is edited with.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

FORMAT = "sonic-inversion"
VERSION = 1


# ---- source images ---------------------------------------------------------------------------------------------
def model_resolution(pipe, height: int | None = None, width: int | None = None) -> tuple[int, int]:
    default = pipe.unet.config.sample_size * pipe.vae_scale_factor
    height, width = height or default, width or default
    if height % pipe.vae_scale_factor or width % pipe.vae_scale_factor:
        raise ValueError(f"height and width must be multiples of {pipe.vae_scale_factor}, got {height}x{width}")
    return height, width


def prepare_image(image: Image.Image | torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A PIL image, a (3, H, W) / (1, 3, H, W) tensor in [0, 1] or an (H, W, 3) uint8 array -> (1, 3, H, W)
    float32 in [0, 1] at ``size`` = (height, width)."""
    height, width = size
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        arr = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
        return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()  # (1, 3, H, W)
    x = torch.as_tensor(image).detach().float().cpu()
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return x.clamp(0, 1).contiguous()


@torch.no_grad()
def encode_image(pipe, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> scaled VAE latent (1, C, H/f, W/f), the posterior mean (deterministic)."""
    x = (image * 2 - 1).to(pipe.device, pipe.vae.dtype)
    return pipe.vae.encode(x).latent_dist.mean.to(pipe.dtype) * pipe.vae.config.scaling_factor


# ---- the model's output as epsilon ------------------------------------------------------------------------------
def to_epsilon(scheduler, model_output: torch.Tensor, sample: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """Epsilon implied by the UNet's output at timestep ``t`` for its input ``sample`` (a_t = alphas_cumprod[t]):
    epsilon as is; v -> sqrt(a_t) v + sqrt(1 - a_t) x_t; x_0 -> (x_t - sqrt(a_t) x_0) / sqrt(1 - a_t)."""
    kind = scheduler.config.prediction_type
    a = scheduler.alphas_cumprod[int(t)].to(sample.device, torch.float32)
    out, x = model_output.float(), sample.float()
    if kind == "epsilon":
        eps = out
    elif kind == "v_prediction":
        eps = a.sqrt() * out + (1 - a).sqrt() * x
    elif kind == "sample":
        eps = (x - a.sqrt() * out) / (1 - a).sqrt()
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}")
    return eps.to(sample.dtype)


# ---- inversion --------------------------------------------------------------------------------------------------
@dataclass
class Inversion:
    """A DDIM-inverted source image."""

    latents: torch.Tensor  # (T + 1, C, h, w): x_0 (encoded image) ... x_T (start of sampling)
    image: torch.Tensor  # (3, H, W) in [0, 1], the source at the model's resolution

    @property
    def num_steps(self) -> int:
        return self.latents.shape[0] - 1

    def at_sampling_step(self, i: int) -> torch.Tensor:
        """The source latent (1, C, h, w) at the noise level of sampling step ``i`` (timesteps[i])."""
        return self.latents[self.num_steps - i][None]


def _check_scheduler(scheduler) -> None:
    if getattr(scheduler.config, "clip_sample", False) or getattr(scheduler.config, "thresholding", False):
        raise ValueError("DDIM inversion needs a scheduler without clip_sample/thresholding (SD's own settings)")


@torch.no_grad()
def ddim_invert(pipe, image, num_inference_steps: int = 50, height: int | None = None,
                width: int | None = None) -> Inversion:
    """DDIM-invert ``image`` with the empty prompt, adapters off; keeps x_0 ... x_T (paper §3.5)."""
    scheduler = pipe.scheduler
    _check_scheduler(scheduler)
    source = prepare_image(image, model_resolution(pipe, height, width))
    x = encode_image(pipe, source)  # (1, C, h, w)
    null_text = pipe.encode_text([""])  # (1, 77, C_text)
    scheduler.set_timesteps(num_inference_steps, device=pipe.device)
    ratio = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    alphas = scheduler.alphas_cumprod.float()
    trajectory = [x]
    for t in scheduler.timesteps.flip(0):  # ascending noise levels
        eps = to_epsilon(scheduler, pipe.unet(x, t, null_text).sample, x, t).float()
        t_from = int(t) - ratio
        a_from = alphas[t_from] if t_from >= 0 else torch.as_tensor(scheduler.final_alpha_cumprod).float()
        a_to = alphas[int(t)]
        x0 = (x.float() - (1 - a_from).sqrt() * eps) / a_from.sqrt()
        x = (a_to.sqrt() * x0 + (1 - a_to).sqrt() * eps).to(pipe.dtype)
        trajectory.append(x)
    return Inversion(torch.cat(trajectory).cpu(), source[0])


@torch.no_grad()
def reconstruct(pipe, inversion: Inversion, trajectory: bool = False) -> torch.Tensor:
    """Plain DDIM denoising from x_T with the empty prompt, adapters off, no guidance, no injection: the latent
    (1, C, h, w) the inversion leads back to, or with ``trajectory`` every latent of the way, (T + 1, C, h, w)
    ordered like :attr:`Inversion.latents` (index 0 = the final latent, index T = x_T)."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(inversion.num_steps, device=pipe.device)
    null_text = pipe.encode_text([""])
    z = inversion.latents[-1][None].to(pipe.device, pipe.dtype)
    path = [z]
    for t in scheduler.timesteps:
        z = scheduler.step(pipe.unet(z, t, null_text).sample, t, z).prev_sample
        path.append(z)
    return torch.cat(path[::-1]) if trajectory else z


def psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


@torch.no_grad()
def reconstruction_error(pipe, inversion: Inversion) -> dict[str, float]:
    """Inversion quality: the reconstruction (:func:`reconstruct`, decoded) against the source image, as MSE and
    PSNR (dB) on [0, 1] pixels, plus the latent MSE between x_0 and the reconstructed latent."""
    z = reconstruct(pipe, inversion)
    image = pipe.decode(z)[0]  # (3, H, W) in [0, 1]
    mse = float((image - inversion.image).pow(2).mean())
    latent_mse = float((z.float().cpu() - inversion.latents[0][None].float()).pow(2).mean())
    return {"mse": mse, "psnr": psnr_from_mse(mse), "latent_mse": latent_mse, "steps": inversion.num_steps}


# ---- cache ------------------------------------------------------------------------------------------------------
def _fingerprint(module: torch.nn.Module, skip: str = ".audio.") -> bytes:
    """A cheap digest of a module's weights: a strided sample of each parameter (adapter weights skipped: the
    inversion runs with adapters off, so installing or training them does not invalidate it)."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        if skip in f".{name}":
            continue
        flat = p.detach().reshape(-1)
        h.update(flat[:: max(1, flat.numel() // 256)].float().cpu().numpy().tobytes())
    return h.digest()


@torch.no_grad()
def model_identity(pipe, extra: str = "") -> str:
    """A digest of everything an inversion depends on: UNet, VAE and scheduler configs, sampled base weights,
    and the empty prompt's text embedding (text encoder + tokenizer)."""
    h = hashlib.sha256(extra.encode())
    for module in (pipe.unet, pipe.vae):
        h.update(json.dumps(dict(module.config), sort_keys=True, default=str).encode())
        h.update(_fingerprint(module))
    h.update(json.dumps(dict(pipe.scheduler.config), sort_keys=True, default=str).encode())
    h.update(pipe.encode_text([""]).float().cpu().numpy().tobytes())
    h.update(str(pipe.dtype).encode())
    return h.hexdigest()


class InversionCache:
    """Inversions on disk, ``<folder>/<key>.safetensors``; key = hash(image pixels, steps, model identity).

    ``identity`` is an optional extra string (e.g. the model's location); the model's configs and weights enter
    the key anyway (:func:`model_identity`). ``hits``/``misses`` count lookups. ``read_only``: the folder is another
    job's output (the workflow's ``invert_sources``); what it lacks is computed and kept in memory, never written.
    """

    def __init__(self, folder: str | os.PathLike, identity: str = "", read_only: bool = False):
        self.folder = Path(folder)
        self.identity = identity
        self.read_only = read_only
        self.hits = 0
        self.misses = 0
        self._identities: dict[int, str] = {}
        self._memory: dict[str, Inversion] = {}

    def key(self, pipe, image: torch.Tensor, num_inference_steps: int) -> str:
        """``image``: the prepared (1, 3, H, W) source."""
        if id(pipe) not in self._identities:
            self._identities[id(pipe)] = model_identity(pipe, self.identity)
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(image.float().cpu().numpy()).tobytes())
        h.update(json.dumps({"shape": list(image.shape), "steps": int(num_inference_steps)}).encode())
        h.update(self._identities[id(pipe)].encode())
        return h.hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def load(self, key: str) -> Inversion | None:
        if key in self._memory:
            return self._memory[key]
        path = self.path(key)
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        return Inversion(tensors["latents"], tensors["image"])

    def save(self, key: str, inversion: Inversion) -> Path | None:
        """Written through a temporary name, so a half-written file is never read (read-only: kept in memory)."""
        if self.read_only:
            self._memory[key] = inversion
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tensors = {"latents": inversion.latents.contiguous(), "image": inversion.image.contiguous()}
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "version": str(VERSION),
                                              "steps": str(inversion.num_steps)})
        tmp.replace(path)
        return path


def invert(pipe, image, num_inference_steps: int = 50, cache: InversionCache | None = None,
           height: int | None = None, width: int | None = None) -> Inversion:
    """:func:`ddim_invert`, through ``cache`` when one is given (a second call loads instead of recomputing)."""
    if cache is None:
        return ddim_invert(pipe, image, num_inference_steps, height, width)
    source = prepare_image(image, model_resolution(pipe, height, width))
    key = cache.key(pipe, source, num_inference_steps)
    found = cache.load(key)
    if found is not None:
        cache.hits += 1
        return found
    cache.misses += 1
    inversion = ddim_invert(pipe, source, num_inference_steps, height, width)
    cache.save(key, inversion)
    return inversion
