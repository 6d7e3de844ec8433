"""Every setting and command is documented, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracklane.cli import main
from tracklane.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`TRACKLANE_{name.upper()}`" in (DOCS / "configuration.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_documented(command: str) -> None:
    assert f"`tracklane {command}" in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_readme_links_resolve() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for name in ("tracking.md", "money-and-attribution.md", "configuration.md", "architecture.md", "webhooks.md"):
        assert f"(docs/{name})" in readme
        assert (DOCS / name).exists()
