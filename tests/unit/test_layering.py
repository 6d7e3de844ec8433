"""The domain imports only the standard library; services import no storage, web or delivery code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tracklane"
FORBIDDEN_IN_SERVICES = ("tracklane.storage", "tracklane.web", "tracklane.delivery", "tracklane.bootstrap",
                         "tracklane.cli", "tracklane.settings", "sqlalchemy", "starlette", "fastapi", "httpx")
IMPURE_STDLIB = {"os", "socket", "subprocess", "time", "random", "secrets", "sqlite3", "threading", "asyncio",
                 "urllib.request", "http", "logging", "io", "pathlib", "shutil", "tempfile"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_domain_is_pure(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "__future__" or name.startswith("tracklane.domain"):
            continue
        assert top in sys.stdlib_module_names, f"{path.name} imports {name}, which is not the standard library"
        assert name not in IMPURE_STDLIB and top not in IMPURE_STDLIB, f"{path.name} imports {name} (I/O or clock)"


@pytest.mark.parametrize("path", _modules("services"), ids=lambda p: p.name)
def test_services_depend_only_downward(path: Path) -> None:
    for name in _imports(path):
        assert not name.startswith(FORBIDDEN_IN_SERVICES), f"{path.name} imports {name}"


def test_domain_never_reads_the_clock() -> None:
    for path in _modules("domain"):
        text = path.read_text(encoding="utf-8")
        for call in ("datetime.now(", "datetime.utcnow(", "date.today(", "os.environ"):
            assert call not in text, f"{path.name} calls {call}"
