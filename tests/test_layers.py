"""Layers import downwards only: workers -> tasks -> models / vendors / config.

Every module of the lower layers is parsed (its source, not imported), and each import,
at the top or inside a function, is checked against what its layer may import.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# layer -> the top-level packages of the project it must never import
FORBIDDEN = {
    "vendors": {"workers", "tasks", "models", "config", "sandbox"},
    "models": {"workers", "tasks", "sandbox"},
    "config": {"workers", "tasks", "sandbox"},
    "tasks": {"workers", "sandbox"},
    "sandbox": {"workers", "tasks"},
}


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in the module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def upward_imports(layer: str) -> list[str]:
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        found += [
            f"{path.relative_to(ROOT)}:{line} imports {package}"
            for line, package in imported(tree)
            if package in FORBIDDEN[layer]
        ]
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer):
    assert upward_imports(layer) == []


def test_the_check_sees_an_import_inside_a_function():
    tree = ast.parse("def f():\n    from workers.app import app\n    import tasks.soe\n")
    assert imported(tree) == [(2, "workers"), (3, "tasks")]


# Installed only by the test and bench extras (pyproject.toml): `pip install .` has none of them,
# and `voxqueue demo` must run after it.
EXTRAS_ONLY = {"requests", "psutil", "tencentcloud", "pytest", "hypothesis", "schemathesis"}
RUNTIME = ("config", "models", "vendors", "tasks", "workers", "sandbox")


def test_the_extras_only_packages_are_not_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = " ".join(project["dependencies"])
    extras = " ".join(" ".join(names) for names in project["optional-dependencies"].values())
    for package in EXTRAS_ONLY:
        assert package in extras and package not in required


def test_the_runtime_imports_nothing_only_an_extra_installs():
    found = []
    for layer in RUNTIME:
        for path in sorted((ROOT / layer).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            found += [f"{path.relative_to(ROOT)}:{line} imports {package}"
                      for line, package in imported(tree) if package in EXTRAS_ONLY]
    assert found == []
