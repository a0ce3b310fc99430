"""Imports run one way: front ends -> core -> providers -> bottom, with no cycle, lazy or not.

Every ``import`` of a package module, at the top of a file or inside a
function, is read from the source (ast); a module may import only from its
own layer or the layers below it, and the import graph has no cycle.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ipyg4f"

#: top to bottom; a module may import from its own layer and the ones below
LAYERS: list[tuple[str, ...]] = [
    ("ipyg4f", "ipyg4f.__main__", "ipyg4f.api"),                                     # entry points
    ("ipyg4f.magics",),                                                # front end 1: parses
    ("ipyg4f.commands", "ipyg4f.provider_commands", "ipyg4f.panel", "ipyg4f.panel.*"),  # the commands; front end 2
    ("ipyg4f.chat", "ipyg4f.runner", "ipyg4f.answer", "ipyg4f.batch", "ipyg4f.batch.*",  # batch: --map, ipyg4f.map
     "ipyg4f.render", "ipyg4f.render.*", "ipyg4f.template",
     "ipyg4f.notebook", "ipyg4f.context", "ipyg4f.context.*",
     "ipyg4f.pull",
     "ipyg4f.agent", "ipyg4f.agent.*",
     "ipyg4f.compare", "ipyg4f.compare.*", "ipyg4f.export", "ipyg4f.pricing", "ipyg4f.pricing.*"),  # the core; pull: %chat pull's progress bar and wording; agent: tools + loop
    ("ipyg4f.history", "ipyg4f.exchange", "ipyg4f.providers", "ipyg4f.providers.*"),      # providers, the store
    ("ipyg4f.http", "ipyg4f.sse", "ipyg4f.errors", "ipyg4f.events", "ipyg4f.messages", "ipyg4f.config",
     "ipyg4f.sqlitefile",
     "ipyg4f.gguf"),                                                   # the bottom: no package imports but these
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    for index, patterns in enumerate(LAYERS):
        if any(fnmatch(module, p) for p in patterns):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def imports_of(path: Path, modules: set[str], me: str | None = None) -> set[str]:
    """The package modules ``path`` (module ``me``) imports anywhere in the file, as module names."""
    me = me or module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import sub" imports the submodule; "from pkg import name", pkg itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        found.update(n for n in names if n in modules and n != me)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def test_every_import_points_down_or_sideways():
    upward = [f"{m} -> {d}" for m, deps in graph().items() for d in deps if layer_of(d) < layer_of(m)]
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_relative_import_names_a_module_that_exists():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    missing = []
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
                if base not in files:
                    missing.append(f"{name}: from {'.' * node.level}{node.module or ''} import ...")
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_check_sees_an_upward_import_hidden_in_a_function(tmp_path):
    probe = tmp_path / "probe.py"  # read as if it were ipyg4f/providers/probe.py
    probe.write_text("def later():\n    from ..commands import run_cell\n")
    modules = {*graph(), "ipyg4f.providers.probe"}
    found = imports_of(probe, modules, me="ipyg4f.providers.probe")
    assert found == {"ipyg4f.commands"}
    assert layer_of("ipyg4f.commands") < layer_of("ipyg4f.providers.probe")  # would be reported as upward
