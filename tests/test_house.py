"""The house rules a reader relies on, checked on every `make test`.

Module and function sizes are checked here; the import layers (registry
knows no Django, services never import tasks, views do no registry I/O,
nothing imports tests) are import-linter contracts in pyproject.toml, run by
`make test` beside this suite.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "manifests", "registry", "bench", "tests")
MODULE_LINES = 500
FUNCTION_LINES = 80


def _sources() -> list[Path]:
    files = []
    for package in PACKAGES:
        files += [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    return sorted(files)


def test_the_house_has_sources_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert "registry/client.py" in names and "manifests/models/__init__.py" in names


def test_no_module_is_over_500_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MODULE_LINES}
    assert long == {}


def test_no_function_is_over_80_lines():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT).as_posix()}:{node.name}"] = lines
    assert long == {}
