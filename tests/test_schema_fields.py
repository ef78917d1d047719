"""The config schema and the dataclasses that hold the defaults name the same keys, and the schema writes no
default: every section of ``sonic.config``, each stage's, competitor's and the miniature SD's settings."""

from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from sonic import config

SCHEMA = config.schema()


def _node(path: str) -> dict:
    node = SCHEMA
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _settings():
    from sonic.competitors.audiotoken import AudioTokenSettings
    from sonic.competitors.gluegen import GlueGenSettings
    from sonic.demo.pretrain.sd import SdSettings
    from sonic.training.stage1 import Stage1Settings
    from sonic.training.stage2 import Stage2Settings

    return {  # schema path -> (dataclass, fields the config does not set: they come from elsewhere)
        "training.stage1": (Stage1Settings, set()),
        "training.stage2": (Stage2Settings, set()),
        "competitors.audiotoken": (AudioTokenSettings, set()),
        "competitors.gluegen": (GlueGenSettings, set()),
        "pretrain.sd": (SdSettings, {"seed"}),  # the top-level seed
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
        assert listed == {f.name for f in fields(cls)}, (path, sorted(listed ^ {f.name for f in fields(cls)}))


@pytest.mark.parametrize("path", ["training.stage1", "training.stage2", "competitors.audiotoken",
                                  "competitors.gluegen", "pretrain.sd"])
def test_every_settings_dataclass_and_its_schema_section_name_the_same_keys(path):
    cls, elsewhere = _settings()[path]
    listed = set(_node(path)["properties"])
    assert listed == {f.name for f in fields(cls)} - elsewhere, sorted(listed ^ ({f.name for f in fields(cls)} - elsewhere))
    assert _node(path).get("additionalProperties") is False, path


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
