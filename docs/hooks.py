"""MkDocs hook: the configuration reference (docs/configuration.md), written at build time from the config's
dataclasses (every key ``sonic.config`` accepts, with its type and default) and the schema (its description, where
the schema gives one; else the comment beside the field in the dataclass). ``tests/test_docs.py`` checks the
reference's keys and defaults against ``sonic.config``."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- config-reference -->"
REQUIRED = "required"
UNSET = "—"  # a key of a mapping whose default does not set it


README_MARKER = "<!-- readme"


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs' hook signature)
    if markdown.startswith(README_MARKER):  # the home page: README.md, one source for both
        return home_markdown()
    if MARKER in markdown:
        return markdown.replace(MARKER, reference_markdown())
    return markdown


def home_markdown() -> str:
    """README.md with its links into docs/ made relative to docs/ (the site's home page)."""
    text = (ROOT / "README.md").read_text()
    text = text.replace("](docs/", "](")
    return text.replace("The site (`make docs` builds it into `site/`, `make docs-serve` serves it at "
                        "http://127.0.0.1:8000):", "This site's pages (`make docs` builds it, `make docs-serve` "
                        "serves it):")


def reference_rows() -> list[dict[str, str]]:
    """One row per key ``sonic.config`` accepts, depth first in the dataclasses' order: ``key`` (dotted),
    ``type`` (the annotation), ``default`` (JSON; ``required`` where the config must give it; ``(section)`` for a
    section of its own, listed with its keys below it) and ``meaning``."""
    from sonic import config

    schema = config.schema()
    rows = []
    for key, default in config.SCALARS.items():
        node = schema["properties"].get(key, {})
        given = REQUIRED if key in config.REQUIRED else _show(default)
        rows.append(_row(key, _schema_type(node), given, _describe(node)))
    for name, cls in config.SECTIONS.items():
        node = schema["properties"][name]
        rows.append(_row(name, "section", REQUIRED if name in config.REQUIRED else "(section)", _describe(node)))
        _walk(cls, name, _object(node, schema), None, rows, schema)
    return rows


def reference_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for row in reference_rows():
        cells = [f"`{row['key']}`", _code(row["type"]), _code(row["default"]), row["meaning"].replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- the walk --------------------------------------------------------------------------------------------------
def _walk(cls: type, path: str, node: dict, instance: Any, rows: list, schema: dict) -> None:
    from sonic import config

    comments = _field_comments(cls)
    for f in config._keys(cls):
        sub = _object(node.get("properties", {}).get(f.name, {}), schema)
        key = f"{path}.{f.name}"
        value = _default(f, instance)
        nested = config._section_type(cls, f)
        meaning = _describe(sub) or comments.get(f.name, "")
        if nested is not None:
            rows.append(_row(key, str(f.type), "null (section)" if value is None else "(section)", meaning))
            _walk(nested, key, sub, value if dataclasses.is_dataclass(value) else None, rows, schema)
        else:
            rows.append(_row(key, str(f.type), value if value == REQUIRED else _show(value), meaning))
            for name, part in _object(sub, schema).get("properties", {}).items():  # the keys of a typed mapping
                given = value.get(name, UNSET) if isinstance(value, dict) else UNSET
                rows.append(_row(f"{key}.{name}", _schema_type(part), given if given == UNSET else _show(given),
                                 _describe(part)))


def _default(f, instance: Any) -> Any:
    if instance is not None:
        return getattr(instance, f.name)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return REQUIRED


def _object(node: dict, schema: dict) -> dict:
    """The object node behind ``$ref`` / ``anyOf`` / ``oneOf`` (a nullable section)."""
    if "$ref" in node:
        target = schema
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return _object(target, schema)
    for alternative in node.get("anyOf", []) + node.get("oneOf", []):
        if "properties" in alternative:
            return alternative
    return node


def _field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` beside each field in the dataclass's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    found = {}
    for match in re.finditer(r"^    (\w+): [^\n]*?  # ([^\n]*)$", source, flags=re.M):
        found.setdefault(match.group(1), match.group(2).strip())
    return found


def _describe(node: dict) -> str:
    return " ".join(str(node.get("description", "")).split())


def _schema_type(node: dict) -> str:
    kind = node.get("type", "")
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _show(value: Any) -> str:
    from sonic import config

    plain = config._plain(value)
    return json.dumps(plain, ensure_ascii=False) if not isinstance(plain, str) else json.dumps(plain)


def _code(text: str) -> str:
    return f"`{text}`" if text and text not in (REQUIRED, UNSET) else text


def _row(key: str, kind: str, default: str, meaning: str) -> dict[str, str]:
    return {"key": key, "type": kind, "default": default, "meaning": meaning}
