"""Typed configuration: one YAML file (``config.yaml`` for the demo, ``workflow/configs/paper.yaml`` for the
paper), validated against ``workflow/schemas/config.schema.yaml`` and turned into frozen dataclasses.

Library code takes these objects (or plain arguments); it never names a model, a device or a path itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sonic.variants import variant_names


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class ModelPaths:
    sd: str
    unet_config: str | None = None
    clap: str | None = None
    blip2: str | None = None
    clip_ais: str | None = None
    clip_eval: str | None = None
    wav2clip: str | None = None
    fid_features: str | None = None

    def require(self, key: str) -> str:
        value = getattr(self, key)
        if not value:
            raise ConfigError(f"models.{key} is not set in the configuration")
        return value


@dataclass(frozen=True)
class AudioEncoderConfig:
    embed_dim: int
    sample_rate: int
    kind: str = "clap"


@dataclass(frozen=True)
class AdapterConfig:
    placement: str | tuple[str, ...] = "mid_and_decoder"


@dataclass(frozen=True)
class GenerationConfig:
    steps: int = 50
    guidance_scale: float = 8.0
    resolution: int = 512
    batch_size: int = 8


@dataclass(frozen=True)
class ProjectorSettings:
    num_tokens: int = 77
    num_blocks: int = 4
    num_heads: int = 8
    attn_dim: int = 512


@dataclass(frozen=True)
class DataConfig:
    datasets: dict[str, dict]
    raw: str = "results/raw"
    synth_size: str | None = None
    synth_bad_inputs: bool = False
    segment_seconds: float = 10.0
    min_clip_seconds: float = 1.0
    min_hits: int = 2
    silence_dbfs: float = -60.0
    frame_size: int | None = None
    val_fraction: float = 0.1
    eval_audios_per_class: int = 5
    shards: int = 2
    split: str = "video"  # video | native | file | clip (sonic.data.manifest.SPLIT_MODES)

    def dataset(self, name: str) -> dict:
        if name not in self.datasets:
            raise ConfigError(f"data.datasets has no dataset {name!r}; configured: {sorted(self.datasets)}")
        return self.datasets[name]

    def split_files(self, name: str) -> dict | None:
        """The dataset's ``{train, val}`` split lists (the ``file`` split), or None."""
        return self.dataset(name).get("split_files")


@dataclass(frozen=True)
class Config:
    profile: str
    seed: int
    models: ModelPaths
    audio_encoder: AudioEncoderConfig
    projector: ProjectorSettings
    adapters: AdapterConfig
    generation: GenerationConfig
    data: DataConfig
    results: str = "results"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    source: str | None = None


def schema() -> dict:
    text = resources.files("sonic").joinpath("resources/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def validate(data: dict, source: str = "<config>") -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def check_names(data: dict, source: str = "<config>") -> None:
    """The names a schema cannot check: every dataset named in ``evaluation.ablation_datasets``,
    ``editing.datasets`` and ``training.budget`` is a key of ``data.datasets``, every variant named in
    ``training.run_variants`` one of ``training.variants``. Plain Python: ``rules/common.smk`` calls it right after
    its schema validation, before any rule is laid out, so a misspelt name is an error, never a silent skip."""
    datasets = sorted((data.get("data") or {}).get("datasets") or {})
    variants = variant_names(data)
    training, evaluation = data.get("training") or {}, data.get("evaluation") or {}
    named = [
        ("evaluation.ablation_datasets", evaluation.get("ablation_datasets"), "a dataset", datasets),
        ("editing.datasets", (data.get("editing") or {}).get("datasets"), "a dataset", datasets),
        ("training.budget", list(training.get("budget") or {}), "a dataset", datasets),
        ("training.run_variants", training.get("run_variants"), "a variant (training.variants)", variants),
    ]
    lines = [f"  {key}: {name!r} is not {what}; configured: {', '.join(known)}"
             for key, names, what, known in named for name in names or [] if name not in known]
    if lines:
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def from_dict(data: dict, source: str = "<config>") -> Config:
    validate(data, source)
    check_names(data, source)
    placement = data.get("adapters", {}).get("placement", "mid_and_decoder")
    return Config(
        profile=data["profile"],
        seed=int(data["seed"]),
        results=data.get("results", "results"),
        models=ModelPaths(**data["models"]),
        audio_encoder=AudioEncoderConfig(**data["audio_encoder"]),
        projector=ProjectorSettings(**data.get("projector", {})),
        adapters=AdapterConfig(placement=placement if isinstance(placement, str) else tuple(placement)),
        generation=GenerationConfig(**data.get("generation", {})),
        data=_data_config(data["data"], source),
        raw=data,
        source=source,
    )


def _data_config(d: dict, source: str) -> DataConfig:
    d = dict(d)
    synth = d.pop("synth", None) or {}
    data = DataConfig(synth_size=synth.get("size"), synth_bad_inputs=bool(synth.get("bad_inputs", False)), **d)
    if data.split == "file":
        missing = [name for name in sorted(data.datasets) if not data.split_files(name)]
        if missing:
            raise ConfigError(f"{source}: data.split is 'file' but data.datasets.{missing[0]} has no split_files "
                              f"({{train: <list>, val: <list>}}); datasets without lists: {missing}")
    return data


def load(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return from_dict(data, str(path))


def unet_architecture(cfg: Config) -> dict:
    """The UNet architecture (diffusers config dict): ``models.unet_config`` or ``<models.sd>/unet/config.json``."""
    candidates = [cfg.models.unet_config] if cfg.models.unet_config else []
    candidates.append(str(Path(cfg.models.sd) / "unet" / "config.json"))
    for candidate in candidates:
        if Path(candidate).is_file():
            return json.loads(Path(candidate).read_text())
    raise ConfigError(
        f"{cfg.source}: no UNet architecture found; looked for {candidates} "
        "(set models.unet_config or point models.sd at a Stable Diffusion folder)"
    )
