"""The config schema and the dataclasses that hold the defaults name the same keys, and the schema writes no
default: every section of ``sonic.config``, each stage's, competitor's and the miniature SD's settings."""

from dataclasses import fields, is_dataclass

import pytest

from sonic import config

SCHEMA = config.schema()


def _node(path: str) -> dict:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _settings():
    from sonic import settings

    return {  # schema path -> dataclass (its fields marked config=False come from elsewhere: a recipe's seed)
        "training.stage1": settings.Stage1Settings,
        "training.stage2": settings.Stage2Settings,
        "competitors.audiotoken": settings.AudioTokenSettings,
        "competitors.gluegen": settings.GlueGenSettings,
        "pretrain.sd": settings.SdSettings,
        "pretrain.clip": settings.ClipSettings,
        "pretrain.clap": settings.ClapRecipe,
        "pretrain.blip2": settings.Blip2Settings,
        "pretrain.wav2clip": settings.Wav2ClipSettings,
        "pretrain.fid": settings.FidNetSettings,
    }


def _sections() -> dict[str, type]:
    out = {name: cls for name, cls in config.SECTIONS.items()}
    for name, cls in list(out.items()):
        for f in fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default
            if is_dataclass(default) and f.name in _node(name).get("properties", {}):
                out[f"{name}.{f.name}"] = type(default)
    return out


def test_every_config_section_and_the_schema_name_the_same_keys():
    top = set(SCHEMA["properties"])
    assert top == set(config.SECTIONS) | set(config.SCALARS), sorted(top ^ (set(config.SECTIONS) | set(config.SCALARS)))
    for path, cls in _sections().items():
        listed = set(_node(path).get("properties", {}))
        assert listed == _configurable(cls), (path, sorted(listed ^ _configurable(cls)))


def _configurable(cls) -> set[str]:
    return {f.name for f in fields(cls) if f.metadata.get("config", True)}


@pytest.mark.parametrize("path", sorted(_settings()))
def test_every_settings_dataclass_and_its_schema_section_name_the_same_keys(path):
    cls = _settings()[path]
    listed = set(_node(path)["properties"])
    assert listed == _configurable(cls), sorted(listed ^ _configurable(cls))
    assert _node(path).get("additionalProperties") is False, path


@pytest.mark.parametrize("path", sorted(_settings()))
def test_every_settings_dataclass_is_a_typed_field_of_the_config(path):
    """The config holds each stage's, competitor's and miniature model's settings as that dataclass, so a value it
    rejects fails when the file is read; its default is the dataclass's own (one place of the defaults)."""
    section, name = path.split(".")
    holder = config.SECTIONS[section]
    field_ = {f.name: f for f in fields(holder)}[name]
    assert field_.default == _settings()[path](), path
    cfg = config.from_dict({**_minimal(), section: {name: {}}}, "<test>")
    assert isinstance(getattr(getattr(cfg, section), name), _settings()[path]), path


def _minimal() -> dict:
    return {"profile": "demo", "seed": 0, "models": {"sd": "sd"}, "audio_encoder": {"embed_dim": 8, "sample_rate": 48000},
            "data": {"datasets": {"mine": {"format": "folder", "root": "videos"}}}}


def test_a_recipe_seed_is_not_a_config_key():
    """A recipe's seed is the run's top-level seed: the schema does not list it, and the config rejects it."""
    assert "seed" not in _node("pretrain.clip")["properties"]
    with pytest.raises(config.ConfigError, match="seed"):
        config.from_dict({**_minimal(), "pretrain": {"clip": {"seed": 3}}}, "<test>")


def test_a_generated_section_rejects_a_wrong_type():
    with pytest.raises(config.ConfigError, match=r"pretrain\.fid\.widths"):
        config.from_dict({**_minimal(), "pretrain": {"fid": {"widths": "wide"}}}, "<test>")


def test_the_schema_writes_no_default():
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if "default" in node:
                found.append(where)
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(SCHEMA, "<schema>")
    assert not found, found


def test_the_walk_sees_a_key_missing_from_the_schema(monkeypatch):
    node = _node("training.stage1")
    monkeypatch.setitem(node, "properties", {k: v for k, v in node["properties"].items() if k != "token_t"})
    with pytest.raises(AssertionError, match="token_t"):
        test_every_settings_dataclass_and_its_schema_section_name_the_same_keys("training.stage1")
