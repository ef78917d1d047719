"""The documentation site: the configuration reference lists exactly the keys ``sonic.config`` accepts, with the
dataclasses' defaults; every doc page or README section that code, rules and configs point at exists; the README
stays a front door."""

import dataclasses
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest

from sonic import config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the configuration reference -------------------------------------------------------------------------------
def _accepted_keys() -> set[str]:
    """Every dotted key the config accepts, walked from the schema ``sonic.config`` validates with (a key with
    ``properties`` is a section whose keys are accepted too; a mapping of free names, e.g. ``data.datasets``, is
    one key)."""
    schema, resolve = config.schema(), _hooks()._object  # $ref / anyOf resolution as the reference does it
    keys = set()

    def walk(node, path):
        node = resolve(node, schema)
        for name, sub in node.get("properties", {}).items():
            key = f"{path}.{name}" if path else name
            keys.add(key)
            walk(sub, key)

    walk(schema, "")
    return keys


def _dataclass_defaults() -> dict[str, object]:
    """Dotted key -> default, walked from the dataclasses alone (not through the hook's code)."""
    out = {key: default for key, default in config.SCALARS.items() if key not in config.REQUIRED}

    def walk(cls, path, instance):
        for f in dataclasses.fields(cls):
            if not f.metadata.get("config", True):
                continue
            if instance is not None:
                value = getattr(instance, f.name)
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue  # required
            if dataclasses.is_dataclass(value):
                walk(type(value), f"{path}.{f.name}", value)
            elif value is not None or (cls, f.name) not in config.NULLABLE_SECTIONS:
                out[f"{path}.{f.name}"] = value

    for name, cls in config.SECTIONS.items():
        walk(cls, name, None)
    return out


def test_the_configuration_reference_lists_every_accepted_key_with_its_default():
    rows = {row["key"]: row for row in _hooks().reference_rows()}
    accepted = _accepted_keys()
    assert set(rows) == accepted, (sorted(set(rows) - accepted), sorted(accepted - set(rows)))
    defaults = _dataclass_defaults()
    assert defaults, "no defaults walked"
    for key, value in defaults.items():
        assert json.loads(rows[key]["default"]) == json.loads(json.dumps(config._plain(value))), key
    for key in config.REQUIRED:
        assert rows[key]["default"] == "required", key


def test_the_reference_is_written_into_the_configuration_page():
    hooks = _hooks()
    page = (DOCS / "configuration.md").read_text()
    assert hooks.MARKER in page
    built = hooks.on_page_markdown(page, None, None, None)
    assert "| `training.stage1.lr` | `float` | `0.0001` |" in built
    assert "| `pretrain.clip.batch_size` | `int` | `64` |" in built


# ---- what code points at exists ---------------------------------------------------------------------------------
DOC_REF = re.compile(r"docs/([\w./-]+?\.md)(?:#([\w-]+))?")
README_SECTION = re.compile(r"README(?:'s)?,? \\?\"|README, [A-Z]")  # "README, Evaluation", 'README "Demo profile"'
SOURCES = ("sonic", "rules", "tests", "benchmarks", "workflow", "docs", ".ci")
TOP = ("Snakefile", "Makefile", "config.yaml", "pyproject.toml")


def _anchors(page: Path) -> set[str]:
    """The ids of the page's headings, as MkDocs' toc extension makes them (or as given with ``{#id}``)."""
    ids, in_code = set(), False
    for line in page.read_text().split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6} (.*)$", line)
        if match:
            title = match.group(1)
            given = re.search(r"\{#([\w-]+)\}\s*$", title)
            ids.add(given.group(1) if given else _slug(title))
    return ids


def _slug(title: str) -> str:
    text = re.sub(r"[^\w\s-]", "", title.strip().lower())
    return re.sub(r"[-\s]+", "-", text).strip("-")


def _files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    keep = [ROOT / f for f in listed if f.split("/")[0] in SOURCES or f in TOP]
    return [p for p in keep if p.is_file() and p.suffix in (".py", ".smk", ".yaml", ".toml", ".md", "")]


def broken_references(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        text = path.read_text(errors="replace")
        if path.name == "test_docs.py":  # its own examples of broken references
            continue
        for match in DOC_REF.finditer(text):
            page, anchor = DOCS / match.group(1), match.group(2)
            if not page.is_file():
                found.append(f"{path.relative_to(ROOT)}: {match.group(0)}: no such page")
            elif anchor and anchor not in _anchors(page):
                found.append(f"{path.relative_to(ROOT)}: {match.group(0)}: no such section")
        for match in README_SECTION.finditer(text):
            found.append(f"{path.relative_to(ROOT)}: names a README section ({match.group(0)}...); point at a docs page")
    return found


def test_every_doc_page_and_section_that_the_code_names_exists():
    files = _files()
    assert len(files) > 100
    assert broken_references(files) == []


@pytest.mark.parametrize("text, problem", [
    ("# see docs/nowhere.md", "no such page"),
    ("# see docs/evaluation.md#no-such-heading", "no such section"),
    ('# see README, "Evaluation"', "names a README section"),
])
def test_a_reference_to_a_missing_page_or_section_is_found(tmp_path, monkeypatch, text, problem):
    monkeypatch.setattr(Path, "relative_to", lambda self, other: self.name)
    fake = tmp_path / "probe.py"
    fake.write_text(text + "\n")
    (found,) = broken_references([fake])
    assert problem in found


def test_an_existing_section_reference_passes(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "relative_to", lambda self, other: self.name)
    fake = tmp_path / "probe.py"
    fake.write_text("# see docs/evaluation.md#replicates and docs/configuration.md\n")
    assert broken_references([fake]) == []


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().split("\n")
    assert len(lines) <= 150, len(lines)
    assert "make demo" in lines[lines.index("## Two commands") + 3]
