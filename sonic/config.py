"""The configuration contract: one YAML file (``config.yaml`` for the demo, ``workflow/configs/paper.yaml`` for the
paper) is validated against ``workflow/schemas/config.schema.yaml`` and turned into frozen dataclasses, one per
section. The dataclasses below, and the settings of each stage, competitor and miniature model that they hold as
typed fields (:mod:`sonic.settings`), are the one place of every default; the schema checks types and ranges only
(its ``pretrain.<model>`` sections are generated from :mod:`sonic.settings`, the others are checked equal to the
dataclasses by ``tests/test_schema_fields.py``).

Two ways in, one result:

* ``sonic <command> --config FILE`` (by hand): :func:`load` reads the whole file;
* ``sonic <command> --settings JSON`` (what the workflow runs): each rule passes, as a JSON ``params`` value, only
  the settings its command reads (:meth:`Config.select`), resolved here by the same :func:`from_dict` the
  workflow uses at parse time. A setting the rule did not declare is :class:`NotGiven`: reading it is an error
  naming the key, so an undeclared dependency cannot hide.

Library code takes these objects (or plain arguments); it never names a model, a device or a path itself. Plain
Python (no torch): ``rules/common.smk`` imports it to lay out the DAG.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from sonic import settings as settings_module
from sonic import variants
from sonic.errors import InputError
from sonic.settings import (
    AudioTokenSettings,
    Blip2Settings,
    ClapRecipe,
    ClipSettings,
    FidNetSettings,
    GlueGenSettings,
    SdSettings,
    Stage1Settings,
    Stage2Settings,
    Wav2ClipSettings,
)


class ConfigError(InputError):
    """A configuration that cannot be used; the message names the file and the key."""


class NotGiven:
    """A setting left out of a command's ``--settings`` (the rule did not declare it); any use is an error."""

    def __init__(self, key: str, source: str | None):
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_source", source)

    def _fail(self, *_args, **_kwargs):
        raise ConfigError(f"{self._source}: this command reads {self._key}, which its settings do not contain "
                          f"(declare it in the rule's settings)")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        self._fail()

    def __repr__(self) -> str:
        return f"<not given: {self._key}>"

    __bool__ = __iter__ = __len__ = __float__ = __int__ = __index__ = __str__ = __fspath__ = _fail
    __getitem__ = __contains__ = __eq__ = __hash__ = __lt__ = __add__ = __mul__ = _fail


# ---- sections -------------------------------------------------------------------------------------------------
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
    msclap_2022: str | None = None  # CLAP_weights_2022.pth: the encoder of the release method's features
    release: dict | None = None  # {<dataset>: {projector: <.pth>, adapters: <.pt>}}: the authors' released weights

    def require(self, key: str) -> str:
        value = getattr(self, key)
        if not value:
            raise ConfigError(f"models.{key} is not set in the configuration")
        return value

    def fid_network(self, source: str = "<config>") -> str:
        """``models.fid_features``, checked to be an independent judge (SPEC §7): set, and neither one of
        :data:`NOT_FID_NETWORKS` nor inside one. There is no fallback: FID on a network that a generator
        conditions on, or that AIS/AIC/IIS already use, would not measure the images independently."""
        if not self.fid_features:
            raise ConfigError(
                f"{source}: models.fid_features is not set; FID needs its own feature network: the FID Inception "
                "weights file (paper profile) or the miniature FID network folder (`sonic pretrain fid`, demo "
                "profile). It does not fall back to models.clip_eval's image tower, which AIC and IIS use")
        self.check_fid_independent(source)
        return self.fid_features

    def check_fid_independent(self, source: str = "<config>") -> None:
        """An error naming the keys if ``models.fid_features`` is the location of one of :data:`NOT_FID_NETWORKS`
        or inside it (``models.sd``'s ``text_encoder/``, say). Locations are compared as resolved paths (hub ids
        as written)."""
        if not self.fid_features:
            return
        fid = _location(self.fid_features)
        hits = []
        for key in NOT_FID_NETWORKS:
            other = getattr(self, key)
            if other and (fid == _location(other) or _location(other) in fid.parents):
                hits.append(f"models.{key} ({other})")
        if hits:
            raise ConfigError(
                f"{source}: models.fid_features ({self.fid_features}) is, or is inside, {' and '.join(hits)}; the FID "
                f"network must be none of models.{', models.'.join(NOT_FID_NETWORKS)} ({NOT_FID_WHY})")


# What FID must not judge with (SPEC §7): what a generator conditions on (the text encoder inside ``sd``; CLAP) and
# what AIS, AIC and IIS judge with (the two CLIPs).
NOT_FID_NETWORKS = ("sd", "clap", "clip_eval", "clip_ais")
NOT_FID_WHY = "networks a generator conditions on, or that AIS, AIC and IIS use"


def _location(value: str) -> Path:
    """A model location as a comparable path: hub ids as written, local paths resolved."""
    return Path(value) if value.startswith("hub:") else Path(value).resolve()


@dataclass(frozen=True)
class AudioEncoderConfig:
    embed_dim: int
    sample_rate: int
    kind: str = "clap"


@dataclass(frozen=True)
class ProjectorSettings:
    num_tokens: int = 77
    num_blocks: int = 4
    num_heads: int = 8
    attn_dim: int = 512
    architecture: str = "paper"  # paper | release (the authors' released module; docs/paper-profile.md)


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
class SynthConfig:
    size: str | None = None  # smoke | demo; None = real data
    bad_inputs: bool = False


@dataclass(frozen=True)
class DataConfig:
    datasets: dict[str, dict]
    raw: str = "results/raw"
    synth: SynthConfig = SynthConfig()
    segment_seconds: float = 10.0
    min_clip_seconds: float = 1.0
    min_hits: int = 2
    silence_dbfs: float = -60.0
    frame_size: int | None = None
    caption_dtype: str = "float32"  # BLIP-2's weights while captioning: float32 | bfloat16 | float16
    val_fraction: float = 0.1
    split: str = "video"  # video | native | file | clip (sonic.data.manifest.SPLIT_MODES)
    eval_audios_per_class: int = 5
    shards: int = 2

    def dataset(self, name: str) -> dict:
        if name not in self.datasets:
            raise ConfigError(f"data.datasets has no dataset {name!r}; configured: {sorted(self.datasets)}")
        return self.datasets[name]

    def split_files(self, name: str) -> dict | None:
        """The dataset's ``{train, val}`` split lists (the ``file`` split), or None."""
        return self.dataset(name).get("split_files")


@dataclass(frozen=True)
class PretrainConfig:
    enabled: bool = False
    random_weights: bool = False  # rehearsal: paper-size random-weight models (sonic.demo.random_models)
    evaluate: bool = True
    steps: dict[str, int | None] = field(default_factory=dict)  # per miniature model; unnamed = its recipe's steps
    # the miniature models' recipes (sonic.settings); their seed is the top-level seed, not a key here
    sd: SdSettings = SdSettings()
    clip: ClipSettings = ClipSettings()
    clap: ClapRecipe = ClapRecipe()
    blip2: Blip2Settings = Blip2Settings()
    wav2clip: Wav2ClipSettings = Wav2ClipSettings()
    fid: FidNetSettings = FidNetSettings()



LOOP_KEYS = ("checkpoint_every", "checkpoints_total_limit", "mixed_precision", "max_grad_norm")


@dataclass(frozen=True)
class TrainingConfig:
    """``training``: the loop settings shared by every trained method, the stage settings
    (:class:`~sonic.settings.Stage1Settings` / ``Stage2Settings``) and the variants (:mod:`sonic.variants`), which
    override parts of them and are checked against the same types when the config is read."""

    run_variants: tuple[str, ...] = ("full",)
    threads: int = 2
    mixed_precision: str = "no"
    checkpoint_every: int = 100
    checkpoints_total_limit: int | None = 2
    max_grad_norm: float | None = 1.0
    budget: dict[str, float] | None = None
    quality_check: dict | None = None
    resources: dict = field(default_factory=dict)
    stage1: Stage1Settings = Stage1Settings()
    stage2: Stage2Settings = Stage2Settings()
    variants: dict = field(default_factory=lambda: {"full": {}})

    def loop(self) -> dict:
        """The keyword arguments of :class:`~sonic.training.loop.LoopSettings` set here."""
        return {k: getattr(self, k) for k in LOOP_KEYS}

    def budget_of(self, dataset: str) -> float:
        """The dataset's factor on every training run's steps (1 where unnamed)."""
        return float((self.budget or {}).get(dataset, 1.0))


@dataclass(frozen=True)
class CompetitorsConfig:
    """The trained competitors' settings (:class:`~sonic.settings.AudioTokenSettings` / ``GlueGenSettings``)."""

    audiotoken: AudioTokenSettings = AudioTokenSettings()
    gluegen: GlueGenSettings = GlueGenSettings()


@dataclass(frozen=True)
class GuidanceSweepConfig:
    """``evaluation.guidance_sweep`` (docs/evaluation.md#guidance; :mod:`sonic.evaluation.guidance`): every Table 1
    method trained here generates ``clips_per_class`` *training* clips per class x ``seeds`` at each of ``scales``;
    the scale chosen maximises the mean SAC among those whose mean clipped share is at most ``max_clipped``."""

    scales: tuple[float, ...] = (1, 2, 3, 5, 8)
    clips_per_class: int = 2  # the first train clips of each label, by clip_id
    seeds: int = 1
    steps: int | None = None  # None = evaluation.steps
    max_clipped: float = 0.05  # bound on the mean share of 8-bit values at 0 or 255


@dataclass(frozen=True)
class ReplicatesConfig:
    """``evaluation.replicates`` (docs/evaluation.md#replicates; the targets ``replicates`` and
    ``ablations_replicates``): every Table 1 method, and the variants of ``ablation_tables``, trained with ``seeds``
    training seeds, ``seed``, ``seed + 1``, ..., ``seed + seeds - 1`` (the top-level ``seed``: data, split and the
    pretrained models stay those of ``seed``). The first is the single run of the tables, reused."""

    seeds: int = 3
    ablation_tables: tuple[str, ...] = ("table4",)  # of sonic.methods.ABLATION_VARIANTS

    def training_seeds(self, seed: int) -> list[int]:
        """The training seeds of the replicates, the single run's ``seed`` first."""
        return [seed + k for k in range(self.seeds)]


@dataclass(frozen=True)
class EvaluationConfig:
    seeds: int = 2
    steps: int | None = None  # None = generation.steps
    guidance_scale: float | None = None  # None = generation.guidance_scale
    batch_size: int | None = None  # None = generation.batch_size
    ablation_datasets: tuple[str, ...] | None = None  # None = every dataset
    paper_tables: str | None = None
    external: dict | None = None  # {root, methods}
    bootstrap_samples: int = 2000  # resamplings of the evaluation clips behind each interval
    interval_level: float = 0.95
    guidance_sweep: GuidanceSweepConfig | None = None  # None = no sweep
    replicates: ReplicatesConfig = ReplicatesConfig()


@dataclass(frozen=True)
class EditingConfig:
    sources: str | None = None  # folder of source images; None = held-out frames
    num_sources: int = 2
    steps: int | None = None  # None = generation.steps
    guidance_scale: float | None = None  # None = generation.guidance_scale
    f_t: float = 0.8
    attn_t: float = 0.5
    resnets: tuple | None = None  # None = (4,): up_blocks[1].resnets[1]
    source_branch: str = "base"  # base | null_audio
    datasets: tuple[str, ...] | None = None  # None = every dataset
    control_pair: tuple[str, str] | None = None  # Fig. 10's two classes; None = the most different generations


SECTIONS: dict[str, type] = {
    "models": ModelPaths, "audio_encoder": AudioEncoderConfig, "projector": ProjectorSettings,
    "adapters": AdapterConfig, "generation": GenerationConfig, "data": DataConfig, "pretrain": PretrainConfig,
    "training": TrainingConfig, "competitors": CompetitorsConfig, "evaluation": EvaluationConfig,
    "editing": EditingConfig,
}
SCALARS = {"profile": None, "seed": None, "threads": 2, "results": "results"}  # top-level keys and defaults
REQUIRED = ("profile", "seed", "models", "audio_encoder", "data")  # as the schema's `required`


@dataclass(frozen=True)
class Config:
    profile: str
    seed: int
    models: ModelPaths
    audio_encoder: AudioEncoderConfig
    data: DataConfig
    projector: ProjectorSettings = ProjectorSettings()
    adapters: AdapterConfig = AdapterConfig()
    generation: GenerationConfig = GenerationConfig()
    pretrain: PretrainConfig = PretrainConfig()
    training: TrainingConfig = TrainingConfig()
    competitors: CompetitorsConfig = CompetitorsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    editing: EditingConfig = EditingConfig()
    threads: int = 2  # jobs outside training that can use several (synthesis, CLAP features, SD pretraining)
    results: str = "results"
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        """The resolved configuration as plain data (JSON-ready): every key, defaults filled in (a partial
        configuration: every key it was given)."""
        out = _plain(self)
        out.pop("source")
        return out

    def select(self, *keys: str) -> dict:
        """The settings under the dotted ``keys`` (``"generation"``, ``"data.shards"``,
        ``"data.datasets.ravdess"``), nested as in the file: what a rule passes its command as ``--settings``."""
        data, out = self.to_dict(), {}
        for key in keys:
            parts, src, dst = key.split("."), data, out
            for part in parts[:-1]:
                if part not in src:
                    raise ConfigError(f"{self.source}: no setting {key!r}")
                src, dst = src[part], dst.setdefault(part, {})
            if parts[-1] not in src:
                raise ConfigError(f"{self.source}: no setting {key!r}")
            dst[parts[-1]] = copy.deepcopy(src[parts[-1]])
        return out

    def eval_settings(self) -> EvaluationConfig:
        """``evaluation`` with its ``None`` (= the generation setting) filled from ``generation``."""
        ev, gen = self.evaluation, self.generation
        return dataclasses.replace(ev, steps=ev.steps or gen.steps,
                                   guidance_scale=gen.guidance_scale if ev.guidance_scale is None else ev.guidance_scale,
                                   batch_size=ev.batch_size or gen.batch_size)

    def edit_settings(self) -> EditingConfig:
        """``editing`` with its ``None`` steps and guidance (= the generation setting) filled from ``generation``."""
        ed, gen = self.editing, self.generation
        return dataclasses.replace(ed, steps=ed.steps or gen.steps,
                                   guidance_scale=gen.guidance_scale if ed.guidance_scale is None else ed.guidance_scale)

    def variant(self, name: str) -> dict:
        """The sections variant ``name`` trains with (:func:`sonic.variants.resolve`)."""
        try:
            return variants.resolve(self.select("training", "projector", "adapters"), name)
        except ValueError as err:
            raise ConfigError(f"{self.source}: {err.args[0]}") from err


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        items = ((f.name, getattr(value, f.name)) for f in _keys(type(value)))
        return {k: _plain(v) for k, v in items if not isinstance(v, NotGiven)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---- building -------------------------------------------------------------------------------------------------
# Sections whose value may be null (no default instance to read the type from).
NULLABLE_SECTIONS = {(EvaluationConfig, "guidance_sweep"): GuidanceSweepConfig}


def _keys(cls: type) -> list:
    """The fields of ``cls`` that the configuration sets: all but those marked ``metadata={"config": False}``
    (a recipe's ``seed``, which is the top-level ``seed``)."""
    return [f for f in fields(cls) if f.metadata.get("config", True)]


def _section_type(cls: type, f) -> type | None:
    """The dataclass a field of ``cls`` holds (a nested section or a stage's settings), or None."""
    if (cls, f.name) in NULLABLE_SECTIONS:
        return NULLABLE_SECTIONS[cls, f.name]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return type(default) if dataclasses.is_dataclass(default) else None


def _build(cls: type, values: dict, path: str, source: str, partial: bool):
    where = f"{source}: {path}" if source else path
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a mapping, got {values!r}")
    known = {f.name: f for f in _keys(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    kwargs = {}
    for name, f in known.items():
        if name not in values:
            if partial:
                kwargs[name] = NotGiven(f"{path}.{name}", source)
            continue
        value, nested = values[name], _section_type(cls, f)
        if nested is not None and not (value is None and (cls, name) in NULLABLE_SECTIONS):
            value = _build(nested, value or {}, f"{path}.{name}", source, partial=False)
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def typed(cls: type, values: dict, where: str):
    """``cls(**values)`` for a settings dataclass of a stage (e.g. ``Stage1Settings``), the unknown keys and the
    values it rejects reported as a :class:`ConfigError` naming ``where``."""
    if isinstance(values, cls):
        return values
    return _build(cls, values, where, None, partial=False)


def schema() -> dict:
    """The config schema (``workflow/schemas/config.schema.yaml``), each section marked ``x-settings: <name>``
    filled in from that dataclass of :mod:`sonic.settings` (:func:`settings_schema`)."""
    text = resources.files("sonic").joinpath("resources/config.schema.yaml").read_text()
    return _fill_settings(yaml.safe_load(text))


def _fill_settings(node: Any) -> Any:
    if isinstance(node, dict):
        if "x-settings" in node:
            node.update(settings_schema(getattr(settings_module, node["x-settings"])))
        for value in node.values():
            _fill_settings(value)
    elif isinstance(node, list):
        for value in node:
            _fill_settings(value)
    return node


def settings_schema(cls: type) -> dict:
    """The JSON schema of a settings dataclass: an object of exactly its configurable fields (:func:`_keys`), each
    typed by its annotation; no defaults (they stay in the dataclass) and no ranges (the dataclass checks them)."""
    import typing

    hints = typing.get_type_hints(cls)
    return {"type": "object", "additionalProperties": False,
            "properties": {f.name: _type_schema(hints[f.name], f"{cls.__name__}.{f.name}") for f in _keys(cls)}}


def _type_schema(tp: Any, where: str) -> dict:
    import types
    import typing

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a, where) for a in args if a is not type(None)]
        schema_ = options[0] if len(options) == 1 else {"anyOf": options}
        return {"anyOf": [schema_, {"type": "null"}]} if type(None) in args else schema_
    if dataclasses.is_dataclass(tp):
        return settings_schema(tp)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], where)}
        return {"type": "array", "prefixItems": [_type_schema(a, where) for a in args], "minItems": len(args),
                "maxItems": len(args)}
    if origin is dict or tp is dict:
        return {"type": "object"}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if tp in simple:
        return {"type": simple[tp]}
    raise TypeError(f"{where}: no schema for the annotation {tp!r}")


def validate(data: dict, source: str = "<config>", partial: bool = False) -> None:
    """Check ``data`` against the schema (``partial``: only the sections present, as in ``--settings``)."""
    import jsonschema

    full = schema()
    if partial:
        full = dict(full, required=[])
    validator = jsonschema.Draft202012Validator(full)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if partial:  # a section given in part: its required keys may be left out on purpose
        errors = [e for e in errors if e.validator != "required"]
    if errors:
        lines = [line for e in errors for line in _error_lines(e)]
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def _error_lines(error) -> list[str]:
    """One line per problem of a schema error: a misspelt key (an unknown property, or a name outside a
    ``propertyNames`` enum) names the key with its full path and the closest valid name."""
    import difflib

    where = ".".join(map(str, error.absolute_path))
    prefix = f"{where}." if where else ""
    known: list[str] = []
    given: list[str] = []
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = sorted(error.schema.get("properties", {}))
        given = sorted(k for k in error.instance if k not in known)
    elif error.validator == "enum" and "propertyNames" in error.schema_path:  # a name outside the known ones
        known, given = sorted(map(str, error.validator_value)), [str(error.instance)]
    if not given:
        return [f"  {where or '<root>'}: {error.message}{_number_hint(error)}"]
    lines = []
    for key in given:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(known)}"
        lines.append(f"  {prefix}{key}: unknown key; {hint}")
    return lines


def _number_hint(error) -> str:
    """A number written as YAML 1.1 reads text (``1e-4``: no dot), which Snakemake and PyYAML both do."""
    if error.validator != "type" or not isinstance(error.instance, str) or "number" not in str(error.validator_value):
        return ""
    try:
        float(error.instance)
    except ValueError:
        return ""
    return f" (YAML reads {error.instance} as text: write it with a dot, e.g. 1.0e-4 for 1e-4)"


def check_names(data: dict, source: str = "<config>") -> None:
    """The names a schema cannot check: every dataset named in ``evaluation.ablation_datasets``,
    ``editing.datasets``, ``training.budget`` and ``models.release`` is a key of ``data.datasets``, every variant
    named in ``training.run_variants`` one of ``training.variants``; a misspelt name is an error, never a silent
    skip. ``models.release`` also needs ``models.msclap_2022`` (the released model's audio encoder)."""
    datasets = sorted((data.get("data") or {}).get("datasets") or {})
    names = variants.variant_names(data)
    training, evaluation = data.get("training") or {}, data.get("evaluation") or {}
    models = data.get("models") or {}
    named = [
        ("models.release", list(models.get("release") or {}), "a dataset", datasets),
        ("evaluation.ablation_datasets", evaluation.get("ablation_datasets"), "a dataset", datasets),
        ("editing.datasets", (data.get("editing") or {}).get("datasets"), "a dataset", datasets),
        ("training.budget", list(training.get("budget") or {}), "a dataset", datasets),
        ("training.run_variants", training.get("run_variants"), "a variant (training.variants)", names),
    ]
    lines = [f"  {key}: {name!r} is not {what}; configured: {', '.join(known)}"
             for key, given, what, known in named for name in given or [] if name not in known]
    if models.get("release") and not models.get("msclap_2022"):
        lines.append("  models.release: needs models.msclap_2022 (CLAP_weights_2022.pth, the released model's encoder)")
    if lines:
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))


def from_dict(data: dict, source: str = "<config>", partial: bool = False) -> Config:
    """A :class:`Config` from the file's mapping (``partial``: the ``--settings`` of one command, where what is
    left out is :class:`NotGiven` rather than a default)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    validate(data, source, partial)
    unknown = sorted(set(data) - set(SECTIONS) - set(SCALARS))
    if unknown:
        raise ConfigError(f"{source}: unknown top-level keys {unknown}")
    if not partial:
        check_names(data, source)
    kwargs: dict[str, Any] = {"source": source}
    for key, default in SCALARS.items():
        if key in data:
            kwargs[key] = data[key]
        elif partial or default is None:
            kwargs[key] = NotGiven(key, source)
    for key, cls in SECTIONS.items():
        if key in data:
            kwargs[key] = _build(cls, data[key] or {}, key, source, partial)
        elif partial or key in REQUIRED:
            kwargs[key] = NotGiven(key, source)
    cfg = Config(**kwargs)
    if not partial:
        _check(cfg)
    return cfg


def _check(cfg: Config) -> None:
    """Cross-section checks of a whole configuration."""
    cfg.models.check_fid_independent(cfg.source)
    _check_variants(cfg)
    if cfg.pretrain.enabled and cfg.pretrain.random_weights:
        raise ConfigError(f"{cfg.source}: pretrain.enabled and pretrain.random_weights both write the `models` "
                          "locations; set one of them")
    if cfg.data.split == "file":
        missing = [name for name in sorted(cfg.data.datasets) if not cfg.data.split_files(name)]
        if missing:
            raise ConfigError(f"{cfg.source}: data.split is 'file' but data.datasets.{missing[0]} has no split_files "
                              f"({{train: <list>, val: <list>}}); datasets without lists: {missing}")


def _check_variants(cfg: Config) -> None:
    """Every variant of ``training.variants`` resolved and built into the types it trains with, so that a value a
    stage rejects (both stage-1 weights 0, say) fails when the config is read, naming the variant, not when its
    training job starts."""
    for name in variants.variant_names(cfg.select("training")):
        resolved = cfg.variant(name)
        for section, cls in (("stage1", Stage1Settings), ("stage2", Stage2Settings), ("projector", ProjectorSettings),
                             ("adapters", AdapterConfig)):
            if resolved[section] is not None:
                typed(cls, resolved[section], f"{cfg.source}: training.variants.{name}.{section}")


def from_settings(text: str, source: str = "--settings") -> Config:
    """The :class:`Config` of a command's ``--settings`` JSON (see :meth:`Config.select`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: not valid JSON ({err})") from err
    return from_dict(data, source, partial=True)


def load(path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    text = path.read_text()
    try:  # JSON first, then YAML, as Snakemake reads a --configfile (a JSON file is not always YAML 1.1: 1e-06)
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err})") from err
    return from_dict(data, str(path))


def add_arguments(parser, threads: bool = True) -> None:
    """A command's ``--config FILE`` (by hand) or ``--settings JSON`` (the workflow's rules), and ``--threads``."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="workflow config YAML (config.yaml, workflow/configs/paper.yaml)")
    group.add_argument("--settings", help="the settings this command reads, as JSON (what the workflow passes)")
    if threads:
        parser.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes {threads})")


def from_args(args) -> Config:
    """The :class:`Config` of a command's ``--config`` or ``--settings``."""
    if getattr(args, "settings", None) is not None:
        return from_settings(args.settings, source=f"sonic {args.command} --settings")
    return load(args.config)


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
