"""Every setting and command is documented, so the docs cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracklane.cli import main
from tracklane.domain.model import REASON_CODES
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


def test_every_proof_named_in_the_reliability_doc_is_a_test_that_exists() -> None:
    """docs/reliability.md names the test behind each guarantee: each name must be a test function."""
    text = (DOCS / "reliability.md").read_text(encoding="utf-8")
    tests = DOCS.parent / "tests"
    named = 0
    current = ""  # `::test_x` after `test_file.py::test_y` is another test of the same file
    for file, name in re.findall(r"`(test_\w+\.py)?::(test_\w+)`", text):
        current = file or current
        source = (tests / current).read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{current}::{name}"
        named += 1
    assert named >= 60


def test_every_reason_code_is_documented_with_its_meaning() -> None:
    text = (DOCS / "money-and-attribution.md").read_text(encoding="utf-8")
    for code, meaning in REASON_CODES.items():
        assert f"| `{code.value}` | {meaning} |" in text, code
