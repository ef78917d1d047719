"""The package's layering: every import between the sub-packages of ``sonic`` goes down the package list of
docs/development.md (bottom layer first), no import cycle (imports inside functions count), and no private name imported from another
module."""

from collections import defaultdict
from pathlib import Path

from tests.test_envs import import_statements, sonic_modules


def modules() -> dict[str, Path]:
    return sonic_modules()


def imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) of every import statement in the file, at any depth."""
    return import_statements(module, path)


def unit(module: str) -> str:
    """The sub-package (or top-level module) a module belongs to: ``sonic.models.pipeline`` -> ``sonic.models``."""
    return ".".join(module.split(".")[:2])


def dependency_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = defaultdict(set)
    for module, path in mods.items():
        for name, names in imports(module, path):
            targets = [f"{name}.{n}" for n in names if f"{name}.{n}" in mods] or [name]
            for target in targets:
                if target.split(".")[0] == "sonic" and target != "sonic" and unit(target) != unit(module):
                    graph[unit(module)].add(unit(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_sub_packages():
    graph = dependency_graph()
    assert graph["sonic.evaluation"], "the graph is empty: the import walk is broken"
    found = cycles(graph)
    detail = {u: sorted(graph[u] & set(c)) for c in found for u in c}
    assert not found, f"import cycles between sub-packages: {found}; edges inside them: {detail}"


def test_no_private_name_crosses_a_module():
    mods = modules()
    crossing = [f"{module} imports {name}.{n}" for module, path in mods.items() for name, names in imports(module, path)
                if name.startswith("sonic") for n in names if n.startswith("_") and not n.startswith("__")]
    assert not crossing, crossing


def test_the_leaves_import_nothing_above_them():
    """metrics, models and config sit at the bottom: they import no stage of the pipeline."""
    graph = dependency_graph()
    stages = {"sonic.data", "sonic.training", "sonic.evaluation", "sonic.editing", "sonic.competitors", "sonic.demo",
              "sonic.cli"}
    for leaf in ("sonic.metrics", "sonic.models", "sonic.config", "sonic.methods", "sonic.variants"):
        assert not graph.get(leaf, set()) & stages, (leaf, sorted(graph.get(leaf, set()) & stages))


LAYERS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "development.md"


def documented_order() -> list[str]:
    """The units of the package list of docs/development.md ("The package, bottom layer first"), bottom first:
    ``sonic/config.py`` -> ``sonic.config``, ``sonic/models/`` -> ``sonic.models``."""
    text = LAYERS_PAGE.read_text()
    start = text.index("The package, bottom layer first")
    block = text[text.index("```", start) + 3:]
    block = block[:block.index("```")]
    return [".".join(["sonic", line.split()[0].split("/")[1].removesuffix(".py")])
            for line in block.splitlines() if line.startswith("sonic/")]


def upward_imports(graph: dict[str, set[str]], order: list[str]) -> list[str]:
    """Every edge of ``graph`` from a unit to one documented after it (or to or from an undocumented unit)."""
    rank = {u: i for i, u in enumerate(order)}
    out = []
    for source in sorted(graph):
        for target in sorted(graph[source]):
            if source not in rank or target not in rank:
                out.append(f"{source} -> {target}: not in the package list of docs/development.md")
            elif rank[target] > rank[source]:
                out.append(f"{source} imports {target}, which docs/development.md lists above it")
    return out


def test_the_order_check_finds_an_upward_import():
    order = ["sonic.config", "sonic.models", "sonic.evaluation"]
    assert upward_imports({"sonic.evaluation": {"sonic.models", "sonic.config"}, "sonic.models": {"sonic.config"}},
                          order) == []
    assert upward_imports({"sonic.models": {"sonic.evaluation"}}, order) == [
        "sonic.models imports sonic.evaluation, which docs/development.md lists above it"]
    assert upward_imports({"sonic.models": {"sonic.nowhere"}}, order) == [
        "sonic.models -> sonic.nowhere: not in the package list of docs/development.md"]


def test_the_readme_lists_every_unit_once():
    order = documented_order()
    assert len(order) == len(set(order)), order
    units = {unit(m) for m in modules() if m != "sonic"}
    units -= {"sonic.resources"}  # package data (the config schema), no code
    assert units == set(order), (sorted(units - set(order)), sorted(set(order) - units))


def test_every_import_follows_the_documented_order():
    found = upward_imports(dependency_graph(), documented_order())
    assert not found, found
