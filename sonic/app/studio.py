"""What the app does, apart from its page: load weights, read the user's files, generate and edit, and describe
the settings of each result. Gradio-free, so that it is tested directly; :mod:`sonic.app.ui` lays it out.

Every problem with what the user gave (a file that is not audio, silence, an unreadable image, a weights folder
that does not match the config, a malformed field) is an :class:`AppError` whose message names the input and the
problem; the page shows it. Anything else is a bug and propagates.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic.config import Config, ConfigError

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]  # (fraction done, what is happening)


class AppError(ValueError):
    """An input the app cannot use; the message is for the page (names the input and the problem)."""


# ---- the user's fields -------------------------------------------------------------------------------------------
def parse_seeds(text: str | float | None, limit: int = 16) -> list[int]:
    """``"0"``, ``"0, 1, 2"`` or ``"0-3"`` -> seeds (at most ``limit``)."""
    text = "0" if text is None else str(text).strip() or "0"
    if re.fullmatch(r"\d+\.0+", text):  # a number field's 3.0
        text = text.split(".")[0]
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise AppError(f"Seeds: the range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise AppError(f"Seeds: {part!r} is not a non-negative whole number or a range like 0-3")
    if not seeds:
        raise AppError("Seeds: give at least one seed (e.g. 0, or 0, 1, 2, or 0-3)")
    if len(seeds) > limit:
        raise AppError(f"Seeds: {len(seeds)} seeds asked for; at most {limit} at a time")
    return list(dict.fromkeys(seeds))


def parse_layer_betas(text: str | None, global_beta: float, layers: Sequence[str]) -> float | dict[str, float]:
    """The global beta, or with ``"up3=0.5, mid=1.2"`` a per-layer mapping: the named layers take their value,
    every other layer the global one."""
    text = (text or "").strip()
    if not text:
        return float(global_beta)
    out = {name: float(global_beta) for name in layers}
    for part in filter(None, re.split(r"[,\s]+", re.sub(r"\s*=\s*", "=", text))):  # "up3 = 0.5, mid=1" / spaces
        name, sep, value = part.partition("=")
        if not sep:
            raise AppError(f"Per-layer beta: {part!r} is not LAYER=VALUE (e.g. up3=0.5)")
        if name not in out:
            raise AppError(f"Per-layer beta: these weights have no adapter at {name!r}; their layers: "
                           f"{', '.join(layers)}")
        try:
            out[name] = float(value)
        except ValueError:
            raise AppError(f"Per-layer beta: {value!r} (for {name}) is not a number") from None
    return out


def read_audio(path: str | Path | None, sample_rate: int, silence_dbfs: float, what: str = "Audio") -> np.ndarray:
    """A user's audio file as mono float32 at ``sample_rate``; not audio, empty or silent -> :class:`AppError`."""
    from sonic.audio import AudioError, load_audio
    from sonic.data.extract import level_dbfs  # the level extraction's silence check uses

    if not path:
        raise AppError(f"{what}: upload or record an audio clip first")
    name = Path(path).name
    try:
        wave = load_audio(path, sample_rate)
    except AudioError as err:
        reason = str(err).split(": ", 1)[-1]
        raise AppError(f"{what}: {name} is not a readable audio file ({reason})") from None
    level = level_dbfs(wave)
    if level < silence_dbfs:
        raise AppError(f"{what}: {name} is silent ({level:.1f} dBFS, below the {silence_dbfs:g} dBFS of "
                       "data.silence_dbfs); CLAP would describe nothing")
    return wave


def read_image(path: str | Path | None):
    """A user's image as RGB PIL, upright (EXIF orientation applied); missing or unreadable -> :class:`AppError`."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not path:
        raise AppError("Image: upload the image to edit first")
    name = Path(path).name
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")  # a phone photo's EXIF rotation, as viewers show it
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise AppError(f"Image: {name} cannot be read as an image ({err.__class__.__name__}: {err})") from None


# ---- results -----------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """One image the app made: its PNG (settings in its text chunk ``sonic``) and the caption under it."""

    path: Path
    caption: str
    settings: dict = field(default_factory=dict)


def describe(settings: Mapping) -> str:
    """One line per setting, as shown under an image."""
    def value(v):
        if isinstance(v, float):
            return f"{v:g}"
        if isinstance(v, Mapping):
            return ", ".join(f"{k}={value(x)}" for k, x in v.items())
        return str(v)

    return " · ".join(f"{k}: {value(v)}" for k, v in settings.items() if v not in (None, "", {}))


class Studio:
    """One config, one weights folder at a time (:meth:`load`), and an inversion cache shared by every edit."""

    def __init__(self, cfg: Config, device: str = "cpu", out_dir: str | Path | None = None):
        from sonic.editing import InversionCache

        self.cfg = cfg
        self.device = device
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="sonic-app-"))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.pipe = None
        self.weights: str | None = None
        self._sd = None
        self._encoders: dict[str, object] = {}
        # in memory only (read_only): the app never writes into a folder the user did not name
        self.cache = InversionCache(self.out_dir / "inversions", identity=str(cfg.models.sd), read_only=True)
        self._count = 0

    # ---- weights ------------------------------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return self.pipe.adapters.names if self.pipe is not None else []

    def status(self) -> str:
        if self.pipe is None:
            return "No weights loaded."
        enc = self.pipe.audio_encoder
        return (f"Weights: `{self.weights}` · audio encoder {type(enc).__name__} ({enc.embed_dim}-d, "
                f"{enc.sample_rate} Hz) · {len(self.layers)} adapter layers ({', '.join(self.layers)}) · "
                f"{self.cfg.generation.resolution} px")

    def load(self, weights: str | Path) -> str:
        """Load SonicDiffusion ``weights`` on the config's SD (the previous ones are removed first); a folder that is
        not SonicDiffusion weights or does not match the config -> :class:`AppError`."""
        from sonic.models import registry
        from sonic.models.io import read_config
        from sonic.models.pipeline import SonicPipeline

        weights = str(weights or "").strip()
        if not weights:
            raise AppError("Weights: give the SonicDiffusion weights folder")
        where = f"Weights folder {weights}"
        try:
            meta = read_config(weights)
        except (OSError, ValueError) as err:
            raise AppError(f"{where}: not SonicDiffusion weights ({err})") from None
        if self._sd is None:
            self._sd = registry.load_stable_diffusion(self.cfg, device=self.device)
        try:
            enc_cfg = registry.encoder_config_for(self.cfg, weights)
            key = f"{enc_cfg.audio_encoder.kind}:{enc_cfg.models.clap}"
            if key not in self._encoders:
                self._encoders[key] = registry.load_audio_encoder(enc_cfg, device=self.device)
        except ConfigError as err:
            raise AppError(f"{where}: its audio encoder cannot be loaded with config {self.cfg.source}: "
                           f"{err}") from None
        encoder = self._encoders[key]
        audio_dim = meta.get("projector", {}).get("audio_dim")
        if audio_dim is not None and audio_dim != encoder.embed_dim:
            raise AppError(f"{where} does not match config {self.cfg.source}: its projector reads {audio_dim}-d "
                           f"audio embeddings, the audio encoder gives {encoder.embed_dim}-d")
        previous = self.pipe
        if previous is not None:
            previous.adapters.remove()
        try:
            pipe = SonicPipeline.from_weights(weights, self._sd, audio_encoder=encoder)
        except (KeyError, RuntimeError, ValueError) as err:
            if previous is not None:  # the page keeps working with the weights it had
                self.pipe = SonicPipeline.from_weights(self.weights, self._sd, audio_encoder=previous.audio_encoder)
            raise AppError(f"{where} does not match config {self.cfg.source} (its SD at {self.cfg.models.sd}): "
                           f"{str(err).strip(chr(34))}") from None
        self.pipe, self.weights = pipe, weights
        log.info("app: loaded %s", weights)
        return self.status()

    def _pipeline(self):
        if self.pipe is None:
            raise AppError("Weights: no weights are loaded (give a weights folder and press Load)")
        return self.pipe

    # ---- audio ----------------------------------------------------------------------------------------------------
    def embed(self, audio, gain_db: float = 0.0, audio_b=None, alpha: float = 0.5):
        """The CLAP embedding of ``audio`` at ``gain_db`` (interpolated towards ``audio_b`` by ``alpha``)."""
        from sonic.models.pipeline import interpolate_embeddings

        pipe = self._pipeline()
        rate, silence = pipe.audio_encoder.sample_rate, self.cfg.data.silence_dbfs
        embeds = pipe.embed_audio([read_audio(audio, rate, silence)], gain_db=float(gain_db))
        if audio_b:
            other = pipe.embed_audio([read_audio(audio_b, rate, silence, "Second audio")], gain_db=float(gain_db))
            embeds = interpolate_embeddings(embeds, other, float(alpha))
        return embeds

    def _save(self, image, kind: str, settings: dict) -> Result:
        from PIL import PngImagePlugin

        self._count += 1
        path = self.out_dir / f"{kind}_{time.strftime('%Y%m%d-%H%M%S')}_{self._count:03d}.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("sonic", json.dumps(settings, default=str))
        image.save(path, pnginfo=info)
        return Result(path, describe(settings), settings)

    @staticmethod
    def _steps(value, default: int) -> int:
        steps = int(value or default)
        if steps < 1:
            raise AppError(f"Steps: {steps} is not a positive number of DDIM steps")
        return steps

    def _common(self, audio, audio_b, prompt, steps, guidance, beta, layer_betas, gain_db, alpha) -> dict:
        pipe = self._pipeline()
        return {
            "audio": Path(audio).name if audio else None,
            "second audio": Path(audio_b).name if audio_b else None,
            "alpha": float(alpha) if audio_b else None,
            "prompt": (prompt or "").strip() or None,
            "steps": steps,
            "guidance": float(guidance),
            "beta": parse_layer_betas(layer_betas, float(beta), pipe.adapters.names),
            "gain dB": float(gain_db),
            "weights": self.weights,
        }

    # ---- the two tabs ---------------------------------------------------------------------------------------------
    def generate(self, audio, prompt: str | None = None, seeds="0", steps: int | None = None,
                 guidance: float | None = None, beta: float = 1.0, layer_betas: str | None = None,
                 gain_db: float = 0.0, audio_b=None, alpha: float = 0.5,
                 progress: Progress | None = None) -> list[Result]:
        """One image per seed; ``progress(fraction, text)`` after each DDIM step."""
        from sonic.images import to_pil

        pipe, gen = self._pipeline(), self.cfg.generation
        steps = self._steps(steps, gen.steps)
        guidance = gen.guidance_scale if guidance is None else guidance
        seed_list = parse_seeds(seeds)
        settings = self._common(audio, audio_b, prompt, steps, guidance, beta, layer_betas, gain_db, alpha)
        embeds = self.embed(audio, gain_db, audio_b, alpha)
        batches = math.ceil(len(seed_list) / gen.batch_size)
        done = [0]

        def step(i, latents):
            done[0] += 1
            if progress:
                progress(done[0] / (batches * steps), f"DDIM step {i + 1}/{steps}")

        images = pipe(embeds, prompt=settings["prompt"], seeds=seed_list, num_inference_steps=steps,
                      guidance_scale=float(guidance), beta=settings["beta"], height=gen.resolution,
                      width=gen.resolution, batch_size=gen.batch_size, progress=False, callback=step)
        return [self._save(image, "generate", {"seed": seed, **settings})
                for seed, image in zip(seed_list, to_pil(images), strict=True)]

    def edit(self, image, audio, prompt: str | None = None, f_t: float | None = None, attn_t: float | None = None,
             steps: int | None = None, guidance: float | None = None, beta: float = 1.0,
             layer_betas: str | None = None, gain_db: float = 0.0, progress: Progress | None = None) -> Result:
        """Audio-guided Plug-and-Play edit of ``image`` (paper §3.5); the inversion of an image is computed once per
        step count and reused by every later edit of it."""
        import dataclasses

        from sonic.editing import PnPConfig, edit
        from sonic.images import to_pil

        pipe, gen = self._pipeline(), self.cfg.generation
        ed = self.cfg.edit_settings()
        ed = dataclasses.replace(ed, f_t=ed.f_t if f_t is None else float(f_t),
                                 attn_t=ed.attn_t if attn_t is None else float(attn_t))
        try:
            pnp = PnPConfig.from_settings(ed)
        except ValueError as err:
            raise AppError(f"f_t / attn_t: {err}") from None
        steps = self._steps(steps, ed.steps)
        guidance = ed.guidance_scale if guidance is None else guidance
        source = read_image(image)
        settings = {"image": Path(image).name, "f_t": pnp.f_t, "attn_t": pnp.attn_t,
                    **self._common(audio, None, prompt, steps, guidance, beta, layer_betas, gain_db, 0.0)}
        embeds = self.embed(audio, gain_db)
        hits = self.cache.hits
        if progress:
            progress(0.0, "DDIM inversion")

        def step(i, latents):
            if progress:
                progress((i + 1) / steps, f"edit step {i + 1}/{steps}")

        images = edit(pipe, source, embeds, prompt=settings["prompt"], num_inference_steps=steps,
                      guidance_scale=float(guidance), beta=settings["beta"], cache=self.cache, config=pnp,
                      height=gen.resolution, width=gen.resolution, callback=step)
        settings["inversion"] = "reused" if self.cache.hits > hits else "computed"
        return self._save(to_pil(images)[0], "edit", settings)
