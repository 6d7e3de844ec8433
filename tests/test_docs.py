"""Every setting and command is documented, so the docs cannot drift from the code."""

from __future__ import annotations

import re
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


def test_readme_links_every_document_and_every_link_resolves() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)\)", readme))
    assert linked == {path.name for path in DOCS.glob("*.md")}
