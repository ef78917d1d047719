"""Training and loading the competitors: ``competitors.<method>`` settings (unknown keys are errors), the shared
loop and budget, and the generator of a trained method."""

from __future__ import annotations

from pathlib import Path

from sonic.competitors.audiotoken import AudioTokenGenerator, AudioTokenSettings, train_audiotoken
from sonic.competitors.common import TextConditionedGenerator
from sonic.competitors.gluegen import GlueGenGenerator, GlueGenSettings, train_gluegen
from sonic.config import Config, ConfigError, typed

METHODS = ("audiotoken", "gluegen")
SETTINGS = {"audiotoken": AudioTokenSettings, "gluegen": GlueGenSettings}

def _method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown competitor {method!r}; trained competitors: {list(METHODS)}")
    return method


def settings(cfg: Config, method: str):
    """The typed settings of ``method`` from ``competitors.<method>``."""
    values = getattr(cfg.competitors, _method(method))
    return typed(SETTINGS[method], values, f"competitors.{method}")


def _loop_settings(cfg: Config, steps: int, progress: bool):
    from sonic.training.loop import LoopSettings

    return LoopSettings(steps=steps, seed=cfg.seed, progress=progress, **cfg.training.loop())


def train(cfg: Config, method: str, manifest: str, clap: str, clap_index: str, out: str, progress: bool = True,
          budget: float = 1.0) -> dict:
    """Train ``method`` on the train clips of one dataset into ``out`` (``out/weights`` is what
    :func:`load_generator` reads); returns the summary also written to ``out/summary.json``.

    AudioToken trains on frames with the placeholder prompt, GlueGen on label prompts (neither reads the BLIP-2
    captions). ``budget`` is the dataset's factor on the configured steps, the same as SonicDiffusion's
    (``training.budget``)."""
    from sonic.models import registry
    from sonic.training.data import load_clip_set
    from sonic.training.loop import fingerprint
    from sonic.training.run import scaled_steps

    s = settings(cfg, method)
    clips = load_clip_set(manifest, clap, clap_index)
    if clips.clap.shape[1] != cfg.audio_encoder.embed_dim:
        raise ConfigError(f"{clap}: {clips.clap.shape[1]}-d embeddings, but audio_encoder.embed_dim is "
                          f"{cfg.audio_encoder.embed_dim}")
    loop_settings = _loop_settings(cfg, scaled_steps(s.steps, budget), progress)
    meta = {"dataset": Path(manifest).parent.name}
    if method == "audiotoken":
        run_id = fingerprint([manifest, clap, clap_index, cfg.models.sd], method=method, settings=s,
                             loop=loop_settings, resolution=cfg.generation.resolution)
        sd = registry.load_stable_diffusion(cfg)
        return train_audiotoken(sd, clips, s, loop_settings, out, cfg.generation.resolution, run_id=run_id, **meta)
    sd_root = Path(cfg.models.sd)
    run_id = fingerprint([manifest, clap, clap_index, sd_root / "text_encoder", sd_root / "tokenizer"],
                         method=method, settings=s, loop=loop_settings)
    text_encoder, tokenizer = registry.load_text_encoder(cfg)
    return train_gluegen(text_encoder, tokenizer, clips, s, loop_settings, out, run_id=run_id, **meta)


def load_generator(cfg: Config, method: str, weights_dir: str | Path, device: str = "cpu"
                   ) -> TextConditionedGenerator:
    """The frozen SD of ``models.sd`` with the trained ``method`` from ``weights_dir`` (``<out>/weights``)."""
    from sonic.models import registry

    cls = {"audiotoken": AudioTokenGenerator, "gluegen": GlueGenGenerator}[_method(method)]
    return cls.from_weights(registry.load_stable_diffusion(cfg, device=device), weights_dir)
