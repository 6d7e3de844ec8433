"""Macro expansion: values percent-encoded so they cannot change the URL; unknown macros refused."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import CATALOGUE, expand, validate_template

TEMPLATE = "https://track.example/p/{sub1}/x?tid={transaction_id}&amt={amount}&s2={sub2}"


@given(sub1=st.text(min_size=1), tid=st.text(min_size=1), sub2=st.text())
def test_values_are_percent_encoded_and_round_trip(sub1: str, tid: str, sub2: str) -> None:
    url = expand(TEMPLATE, {"sub1": sub1, "transaction_id": tid, "sub2": sub2, "amount": None})
    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "track.example"
    assert parts.fragment == ""
    segments = parts.path.split("/")
    assert len(segments) == 4
    assert unquote(segments[2], errors="strict") == sub1
    query = parse_qs(parts.query, keep_blank_values=True)
    assert set(query) == {"tid", "amt", "s2"}
    assert query["tid"] == [tid]
    assert query["amt"] == [""]
    assert query["s2"] == [sub2]


@given(name=st.from_regex(r"[a-z_0-9]{1,12}", fullmatch=True).filter(lambda n: n not in CATALOGUE))
def test_unknown_macros_are_refused_on_save(name: str) -> None:
    with pytest.raises(InvalidParameter) as error:
        validate_template(f"https://a.example/?x={{{name}}}", "url")
    assert "unknown macro" in error.value.message


@pytest.mark.parametrize(
    "template",
    [
        "https://{sub1}.example/",
        "https://a.example/#{sub1}",
        "ftp://a.example/{sub1}",
        "/relative/{sub1}",
        "https://a.example/ x",
        "",
    ],
)
def test_macros_only_in_path_and_query_of_absolute_urls(template: str) -> None:
    with pytest.raises(InvalidParameter):
        validate_template(template, "destination_url")


def test_every_catalogue_macro_is_accepted() -> None:
    template = "https://a.example/?" + "&".join(f"{name}={{{name}}}" for name in sorted(CATALOGUE))
    assert validate_template(template, "url") == template
    expanded = expand(template, dict.fromkeys(CATALOGUE, "v"))
    assert "{" not in expanded
    assert parse_qs(urlsplit(expanded).query) == {name: ["v"] for name in CATALOGUE}


def test_missing_value_expands_to_empty() -> None:
    assert expand("https://a.example/?a={sub1}&b=2", {}) == "https://a.example/?a=&b=2"
