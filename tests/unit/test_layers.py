"""The layers of docs/ARCHITECTURE.md: what each package may import, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
OURS = {"config", "models", "services", "handlers", "sockets", "server", "migrations"}
# package -> the packages of ours it may import (itself always)
ALLOWED = {
    "config": set(),
    "models": {"config"},
    "migrations": {"config", "models"},
    "services": {"config", "models"},
    "handlers": {"config", "models", "services"},
    "sockets": {"config", "models", "services"},
}
# libraries that speak HTTP or Socket.IO stay out of the rules
EDGE_LIBRARIES = {"tornado", "socketio", "engineio"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules() -> list[tuple[str, Path]]:
    return [
        (package, path) for package in ALLOWED for path in sorted((ROOT / package).rglob("*.py"))
    ]


@pytest.mark.parametrize(("package", "path"), modules(), ids=lambda v: str(v))
def test_each_module_imports_only_the_layers_below_it(package: str, path: Path) -> None:
    ours = imports_of(path) & OURS - {package}
    assert ours <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {ours - ALLOWED[package]}"
    if package in ("config", "models", "services"):
        edge = imports_of(path) & EDGE_LIBRARIES
        assert not edge, f"{path.relative_to(ROOT)} imports {edge}: rules know no transport"
