"""Imports flow downward through every layer (the import-linter contracts in pyproject.toml, run here), the
domain imports only the standard library and no I/O, and the check is shown to fail on an upward import."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tracklane"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
FORBIDDEN_IN_SERVICES = (
    "tracklane.storage",
    "tracklane.web",
    "tracklane.delivery",
    "tracklane.bootstrap",
    "tracklane.cli",
    "tracklane.settings",
    "sqlalchemy",
    "starlette",
    "fastapi",
    "httpx",
)
IMPURE_STDLIB = {
    "os",
    "socket",
    "subprocess",
    "time",
    "random",
    "secrets",
    "sqlite3",
    "threading",
    "asyncio",
    "urllib.request",
    "http",
    "logging",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
}


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


def _lint(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the package importable from `cwd` (it puts `cwd` first on the path)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(config)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contract(contract_id: str) -> dict[str, Any]:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    contract: dict[str, Any] = next(c for c in options["contracts"] if c["id"] == contract_id)
    return contract


def test_every_layer_imports_only_downward() -> None:
    result = _lint(ROOT / "pyproject.toml", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def test_the_layers_contract_names_every_module_of_the_package() -> None:
    """The contract is exhaustive: a new top-level module or subpackage must be given its layer."""
    layers: list[str] = _contract("layers")["layers"]
    declared = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    modules = {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert declared == modules | packages


def test_the_pure_domain_contract_forbids_every_dependency() -> None:
    """Each runtime dependency's import names are forbidden to the domain (adding a dependency means adding
    its modules to the `pure-domain` contract)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    modules_of: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            modules_of.setdefault(_normalised(distribution), set()).add(module)
    forbidden = set(_contract("pure-domain")["forbidden_modules"])
    for requirement in project["dependencies"]:
        name = _normalised(re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0])
        provided = {m for m in modules_of.get(name, set()) if not m.startswith("_")}
        assert provided, f"{name} is not installed"
        assert provided <= forbidden, f"add {sorted(provided - forbidden)} ({name}) to the pure-domain contract"


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_check_fails_on_an_upward_import(tmp_path: Path) -> None:
    """The same contracts over a copy of the package with one violation of each kind: all four are named."""
    copy = tmp_path / "tracklane"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    _append(copy / "services" / "registry.py", "import tracklane.bootstrap")  # services above the root
    _append(copy / "web" / "errors.py", "import tracklane.storage.database")  # web reaching into storage
    _append(copy / "domain" / "money.py", "import sqlalchemy")  # the domain importing a driver
    (copy / "extras.py").write_text('"""A module no layer lists."""\n', encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    result = _lint(tmp_path / "pyproject.toml", tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert "0 kept, 2 broken" in output, output
    assert "tracklane.services is not allowed to import tracklane.bootstrap" in output, output
    assert "tracklane.web is not allowed to import tracklane.storage" in output, output
    assert "tracklane.domain.money -> sqlalchemy" in output, output
    assert "- tracklane.extras" in output, output


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
