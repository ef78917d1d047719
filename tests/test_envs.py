"""The conda environments of the rules (envs/*.yaml), checked without conda.

Each rule group has one environment that pins, with pyproject.toml's versions, what the group's `sonic` commands
import (found statically: the imports of the CLI function a rule calls, then of every `sonic` module reachable from
it, lazy imports included), plus the pyproject-pinned packages those depend on, so pip cannot pick other versions.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
RULE_FILES = sorted((ROOT / "rules").glob("*.smk"))
RUN_DIRECTIVES = ("shell", "run", "script", "notebook", "wrapper")
# `sonic pretrain <model>` imports sonic.demo.pretrain.<model> by name (sonic.demo.commands.run_pretrain).
DYNAMIC_MODULES = {"pretrain": "sonic.demo.pretrain.{}"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, sep, version = dep.partition("==")
        assert sep, f"pyproject.toml: {dep!r} is not pinned with =="
        pins[_norm(name)] = version
    return pins


def env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


def pip_pins(env: dict) -> dict[str, str]:
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                name, sep, version = spec.partition("==")
                assert sep, f"pip requirement {spec!r} is not pinned with =="
                pins[_norm(name)] = version
    return pins


# ---- rules -----------------------------------------------------------------------------------------------
def shell_constants(text: str) -> dict[str, str]:
    """Module-level string constants of a rule file (``NAME = ("..." "...")``), as a rule's ``shell:`` may name one."""
    out = {}
    for m in re.finditer(r'(?ms)^([A-Z_][A-Z0-9_]*) = (\(\n(?:\s+".*?"\n)+\)|".*?")$', text):
        out[m.group(1)] = ast.literal_eval(m.group(2))
    return out


def parse_rules() -> dict[str, dict]:
    """rule name -> {file, conda, shell} from the text of rules/*.smk (rules may be nested in `if` blocks)."""
    rules = {}
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        constants = shell_constants(path.read_text())
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)rule (\w+):", line)
            if not m:
                continue
            indent = len(m.group(1))
            block = []
            for nxt in lines[i + 1 :]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt)
            directives: dict[str, list[str]] = {}
            current = None
            for b in block:
                d = re.match(r"^\s*(\w+):(.*)$", b)
                if d and len(b) - len(b.lstrip()) == indent + 4:
                    current = d.group(1)
                    directives[current] = [d.group(2).strip()] if d.group(2).strip() else []
                elif current and b.strip():
                    directives[current].append(b.strip())
            conda = None
            if "conda" in directives:
                text = " ".join(directives["conda"])
                s = re.fullmatch(r'"([^"]+)"', text)
                conda = s.group(1) if s else text
            rules[m.group(2)] = {
                "file": path,
                "conda": conda,
                "runs": any(k in directives for k in RUN_DIRECTIVES),
                "benchmark": "benchmark" in directives,
                "shell": constants.get(shell := " ".join(directives.get("shell", [])), shell),
            }
    return rules


RULES = parse_rules()
RUNNING = sorted(name for name, r in RULES.items() if r["runs"])


# ---- imports of a command --------------------------------------------------------------------------------
@cache
def sonic_modules() -> dict[str, Path]:
    mods = {}
    for p in (ROOT / "sonic").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


@cache
def _tree(module: str) -> ast.Module:
    return ast.parse(sonic_modules()[module].read_text())


def _function_nodes(module: str, function: str) -> list[ast.AST]:
    """The function's definition and those of the module's functions it calls, transitively."""
    defs = {n.name: n for n in _tree(module).body if isinstance(n, ast.FunctionDef)}
    todo, seen = [function], []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo.extend(n.func.id for n in ast.walk(defs[name]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                    and n.func.id in defs)
    return [defs[name] for name in seen]


def imports_of(module: str, function: str | None = None) -> set[str]:
    """Absolute names of what `module` (or one function of it, with the module's functions it calls) imports, at
    any depth (lazy imports too)."""
    mods = sonic_modules()
    nodes = _function_nodes(module, function) if function else [_tree(module)]
    out = set()
    for name, names in import_statements(module, mods[module], nodes):
        out.add(name)
        out.update(f"{name}.{n}" for n in names if f"{name}.{n}" in mods)
    return out


def import_statements(module: str, path: Path, nodes: list[ast.AST] | None = None) -> list[tuple[str, list[str]]]:
    """(absolute module name, imported names) of every import statement in ``nodes`` (default: the whole file),
    at any depth; relative imports resolved against ``module``'s package."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for n in (n for node in (nodes or [ast.parse(path.read_text())]) for n in ast.walk(node)):
        if isinstance(n, ast.Import):
            out.extend((a.name, []) for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = package.split(".")[: len(package.split(".")) - (n.level - 1)]
                name = ".".join(base + ([n.module] if n.module else []))
            else:
                name = n.module
            out.append((name, [a.name for a in n.names]))
    return out


def third_party_imports(start: set[str]) -> tuple[set[str], set[str]]:
    """(sonic modules reached, top-level names of the other imports) from the import names `start`."""
    mods = sonic_modules()
    seen, other = set(), set()
    stack = list(start)
    while stack:
        name = stack.pop()
        top = name.split(".")[0]
        if top != "sonic":
            other.add(top)
            continue
        if name in seen or name not in mods:
            continue
        seen.add(name)
        parts = name.split(".")
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        stack.extend(imports_of(name))
    return seen, {o for o in other if o not in sys.stdlib_module_names}


def dependency_closure(dist: str, seen: set[str] | None = None) -> set[str]:
    """Installed (non-extra) requirements of a distribution, recursively."""
    seen = set() if seen is None else seen
    try:
        requires = md.requires(dist) or []
    except md.PackageNotFoundError:
        return seen
    for req in requires:
        if "extra ==" in req:
            continue
        name = _norm(re.match(r"[A-Za-z0-9_.\-]+", req).group(0))
        if name not in seen:
            seen.add(name)
            dependency_closure(name, seen)
    return seen


@cache
def command_functions() -> dict[str, tuple[str, str]]:
    """`sonic` command -> (module, function) that runs it, as the stages register them."""
    from sonic.cli import build_parser

    out = {}
    for name, p in build_parser()._subparsers._group_actions[0].choices.items():
        steps = p._subparsers._group_actions[0].choices if p._subparsers else {}
        for key, parser in [(name, p)] + [(f"{name} {step}", q) for step, q in steps.items()]:
            func = parser.get_default("func") or p.get_default("func")
            if func:
                out[key] = (func.__module__, func.__name__)
    return out


def required_packages(shell: str) -> set[str]:
    """pyproject-pinned distributions a rule's `sonic ...` command needs."""
    m = re.search(r"\bsonic (\w[\w-]*)(?: (\w+))?", shell)
    assert m, f"no `sonic <command>` in {shell!r}"
    command, argument = m.group(1), m.group(2)
    functions = command_functions()
    if f"{command} {argument}" in functions or command in functions:
        start = imports_of(*functions.get(f"{command} {argument}", functions.get(command)))
    else:  # a stage named by a params value (`sonic train {params.method}`): every stage of the command
        start = set().union(*(imports_of(*f) for key, f in functions.items() if key.startswith(f"{command} ")))
    start.add("sonic.cli")
    if command in DYNAMIC_MODULES and argument:
        start.add(DYNAMIC_MODULES[command].format(argument))
    modules, names = third_party_imports(start)
    by_import = md.packages_distributions()
    dists = set()
    for name in names:
        assert name in by_import, f"`import {name}` (sonic {command}) is not an installed distribution"
        dists.add(_norm(by_import[name][0]))
    if any(re.search(r"(read|to)_excel", sonic_modules()[mod].read_text()) for mod in modules):
        dists.add("openpyxl")  # pandas' Excel engine, never imported by name
    pins = pyproject_pins()
    for dist in list(dists):
        dists |= {d for d in dependency_closure(dist) if d in pins}
    return dists


# ---- tests -----------------------------------------------------------------------------------------------
def test_env_files_exist():
    names = {p.stem for p in env_files()}
    assert {"data", "pretrain", "features", "train", "evaluate"} <= names


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_structure(path):
    env = yaml.safe_load(path.read_text())
    assert set(env) == {"name", "channels", "dependencies"}
    assert env["name"] == f"sonic-{path.stem}"
    assert env["channels"][0] == "conda-forge"
    assert "defaults" not in env["channels"]
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert "pip" in conda_deps
    python = [d for d in conda_deps if re.match(r"python\s*[=<>]", d)]
    assert len(python) == 1, "pin exactly one python"
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert minimum.startswith(">=")
    want = tuple(int(x) for x in minimum[2:].split("."))
    have = tuple(int(x) for x in re.search(r"(\d+(?:\.\d+)*)", python[0]).group(1).split("."))
    assert have[: len(want)] >= want, f"{python[0]} is older than pyproject's requires-python {minimum}"
    assert len(pip_sections) == 1 and list(pip_sections[0]) == ["pip"]
    assert pip_pins(env), "the pip section is empty"
    post_deploy = path.with_name(f"{path.stem}.post-deploy.sh")
    assert post_deploy.is_file(), "the environment needs a post-deploy script that installs `sonic`"
    assert "pip install --no-deps" in post_deploy.read_text()


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_pins_match_pyproject(path):
    pins = pyproject_pins()
    for name, version in pip_pins(yaml.safe_load(path.read_text())).items():
        assert name in pins, f"{path.name}: {name} is not a dependency in pyproject.toml"
        assert version == pins[name], f"{path.name}: {name}=={version}, pyproject.toml pins {pins[name]}"


def test_rules_found():
    assert {"synth", "train_stage1", "train_stage2", "score", "table1", "edit_run"} <= set(RUNNING)


@pytest.mark.parametrize("rule", RUNNING)
def test_rule_has_conda_env(rule):
    conda = RULES[rule]["conda"]
    assert conda, f"rule {rule} ({RULES[rule]['file'].name}) has no conda: directive"
    path = (RULES[rule]["file"].parent / conda).resolve()
    assert path.is_file(), f"rule {rule}: {conda} does not exist"
    assert path.parent == ENVS


def test_every_env_is_used():
    used = {(RULES[r]["file"].parent / RULES[r]["conda"]).resolve() for r in RUNNING if RULES[r]["conda"]}
    assert set(env_files()) == used


@pytest.mark.parametrize("rule", RUNNING)
def test_env_covers_rule_imports(rule):
    env_path = (RULES[rule]["file"].parent / RULES[rule]["conda"]).resolve()
    pinned = set(pip_pins(yaml.safe_load(env_path.read_text())))
    missing = required_packages(RULES[rule]["shell"]) - pinned
    assert not missing, f"rule {rule}: {env_path.name} lacks {sorted(missing)}"


@pytest.mark.parametrize("rule", RUNNING)
def test_every_running_rule_writes_a_benchmark_file(rule):
    """The rehearsal's cost table (benchmarks/rehearsal_cost.py) is read from these files: a job without one would
    be missing from it."""
    assert RULES[rule]["benchmark"], f"rule {rule} ({RULES[rule]['file'].name}) has no benchmark: directive"

