"""Rules of the test suite itself (docs/testing.md), checked on its source."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

TESTS = Path(__file__).parent
IMPORT_NAMES = {"pillow": "PIL", "pytest_timeout": "pytest_timeout", "pytest_asyncio": "pytest_asyncio"}


def pinned_test_modules() -> set[str]:
    """The top-level modules of the packages pinned in the ``test`` extra of pyproject.toml."""
    extra = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    names = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].strip().lower().replace("-", "_") for spec in extra}
    return {IMPORT_NAMES.get(name, name) for name in names}


def test_no_pinned_test_dependency_is_skipped_when_missing():
    """``pytest.importorskip`` of a package the test extra pins would turn a broken install into quietly
    skipped tests: those are imported directly (a missing one fails)."""
    pinned = pinned_test_modules()
    assert {"g4f", "pandas", "numpy", "matplotlib", "PIL", "polars", "gguf"} <= pinned, pinned
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).split(".")[0] in pinned):
                found.append(f"{path.relative_to(TESTS)}:{node.lineno} {node.args[0].value}")
    assert found == []
