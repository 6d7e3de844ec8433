"""Hypothesis-driven requests against the public routes (`/r`, `/clk`, `/postback`, `/pixel`, `/v1/*`,
`/segment/{id}`) of a real server, and the strict grammar of their numbers, on SQLite and PostgreSQL.

The input classes are those bad input has shown: ids at and past 2^63 and ids in other scripts' digits,
lone surrogates, NUL and control characters, deep nesting, odd numbers (`1_000`, `1e400`, `NaN`, `-0`),
odd encodings (invalid UTF-8, UTF-16, a BOM, gzip that is not gzip), and odd methods. Every request must be
answered within a timeout and never with a 5xx; a request refused with a 4xx (and any request with an
invalid id) must leave every table as it was (row counts before and after).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import BROWSER, Program, RowCounts, basic, examples, seed, signature
from tests.servers import RunningServer, running_server

TIMEOUT = 10  # seconds per request: longer is a hang
MAX_ID = 2**63 - 1

# ---------------------------------------------------------------------------------------------------------
# the input classes

ODD_IDS = [
    "0", "00", "-1", "+1", " 1", "1 ", "1_0", "1.0", "1e3", "0x1f", "1,0", "",
    str(MAX_ID + 1), str(2**64), "9" * 30, "9" * 5000, "0" * 40 + "1",
    "\u0661", "\u0661\u0662", "\u00b2", "\uff11", "\U0001d7cf", "\u0967", "\u2460", "1\x00", "\x00",
]  # fmt: skip
ODD_NUMBERS = [
    "1_000", "1e3", "1E+3", "NaN", "nan", "Infinity", "-Infinity", "sNaN", "1.2.3", "1,50", "12,5", ".", "-",
    "+5", "0x10", "\u0661\u0662", "\uff11\uff12", "\u00b9", "1" * 5000, "9" * 13, "0.00001", "-1", "-0",
    "1\x00", " ", "\t1",
]  # fmt: skip
ODD_TEXT = [
    "\x00", "a\x00b", "\x01\x02\x1f", "\x7f", "\u0085", "\u2028", "\ufeff", "\ufffe", "\U0010ffff",
    "e\u0301" * 50, "\u202e" + "abc", "\U0001f600" * 20, "x" * 300, "y" * 5000, "%00", "%ff", "'\";--",
    "{transaction_id}", "../../etc/passwd", "<script>",
]  # fmt: skip
SURROGATES = ["\ud800", "a\udfffb", "\ud83d", "\ude00x"]  # only a JSON `\uXXXX` escape can carry one
RAW_PATH_IDS = ["%00", "%ff", "%c0%af", "%2f1", "%2e%2e", "%D9%A1", "%EF%BC%91", "%C2%B2", "1%00", "%20"]
METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "CONNECT"]


def _valid_id(text: str) -> bool:
    """The oracle: ASCII digits naming 1 .. 2^63 - 1."""
    digits = text.lstrip("0")
    return re.fullmatch(r"[0-9]+", text) is not None and len(digits) <= 19 and 0 < int(digits or "0") <= MAX_ID


ids = st.one_of(
    st.sampled_from(ODD_IDS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4),
)
texts = st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=40))
json_texts = st.one_of(texts, st.sampled_from(SURROGATES))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([MAX_ID + 1, 2**64, -(2**63) - 1, 10**400]),
    st.sampled_from([Decimal("1e400"), Decimal("-0"), Decimal("1e-400"), Decimal("0.1e1"), Decimal("123.45678")]),
    st.floats(allow_nan=False, allow_infinity=False),
    json_texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_texts, inner, max_size=4),
    max_leaves=12,
)


def _dump(value: Any) -> bytes:
    """JSON with exact decimals (`1e400` stays a number) and lone surrogates as `\\uXXXX` escapes."""

    def number(obj: Any) -> Any:
        if isinstance(obj, Decimal):
            return _Raw(str(obj))
        raise TypeError(type(obj))

    text = json.dumps(value, default=number, ensure_ascii=True)
    return re.sub(r'\{"__raw__": "([^"]*)"\}', r"\1", text).encode()


class _Raw(dict[str, str]):
    def __init__(self, text: str) -> None:
        super().__init__(__raw__=text)


def _deep(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.sampled_from([64, 600, 1000, 3000, 5000]))
    inner = _deep(depth) if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth
    key = draw(st.sampled_from(["sub1", "amount", "offer_id", "properties", "traits", "batch", "context"]))
    return f'{{"{key}": {inner}}}'.encode()


@dataclass
class Call:
    """One request, and whether the oracle knows it must be refused without writing anything."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    must_not_write: bool = False
    refusal_is_recorded: bool = False  # a 404 from /r with valid ids is a click recorded with its reason


ENCODINGS = st.sampled_from(
    [
        ("application/json", None),
        ("application/json; charset=utf-16", "utf-16"),
        ("application/json", "bom"),
        ("application/x-www-form-urlencoded", None),
        ("text/plain", None),
        ("multipart/form-data; boundary=x", None),
        ("application/json", "latin-1"),
        ("application/octet-stream", "gzip-garbage"),
    ]
)


@st.composite
def body(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> tuple[dict[str, str], bytes]:
    """A POST body of the given fields in an odd shape or encoding, with its headers."""
    content_type, twist = draw(ENCODINGS)
    headers = {"content-type": content_type}
    if draw(st.integers(0, 9)) == 0:
        return headers, draw(deep_json())
    chosen = {name: draw(values) for name, values in fields.items() if draw(st.booleans())}
    if content_type.startswith("application/x-www-form"):
        pairs = [(name, value if isinstance(value, str) else str(value)) for name, value in chosen.items()]
        raw = urlencode([(k, v.encode("utf-8", "surrogatepass")) for k, v in pairs]).encode()
        if draw(st.booleans()):
            raw += b"&sub1=%ff%fe%c0%af"
        return headers, raw
    raw = _dump(draw(st.one_of(st.just(chosen), json_values)) if draw(st.integers(0, 4)) == 0 else chosen)
    if twist == "utf-16":
        raw = raw.decode().encode("utf-16")
    elif twist == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif twist == "latin-1":
        raw = raw.replace(b"}", b',"x":"\xe9\xff"}', 1)
    elif twist == "gzip-garbage":
        headers["content-encoding"] = "gzip"
        raw = draw(st.sampled_from([raw, gzip.compress(raw)[:-5], b"\x1f\x8b" + raw]))
    return headers, raw


# ---------------------------------------------------------------------------------------------------------
# requests per route


def _id_or(program_id: int) -> st.SearchStrategy[str]:
    return st.one_of(st.just(str(program_id)), ids)


@st.composite
def redirect_calls(draw: st.DrawFn, program: Program) -> Call:
    raw = draw(st.booleans())
    offer = draw(st.sampled_from(RAW_PATH_IDS)) if raw else draw(_id_or(program.offer_id))
    partner = draw(_id_or(program.partner_id))
    offer_valid = (not raw) and _valid_id(offer)
    method = draw(st.sampled_from(["GET"] * 5 + ["HEAD", *METHODS]))
    subs = [(f"sub{n}", draw(texts)) for n in range(1, 6) if draw(st.booleans())]
    path = f"/r/{offer if raw else quote(offer, safe='')}/{quote(partner, safe='')}"
    invalid = not (offer_valid and _valid_id(partner))
    return Call(method, path, subs, must_not_write=invalid or method != "GET", refusal_is_recorded=not invalid)


@st.composite
def click_calls(draw: st.DrawFn, program: Program) -> Call:
    fields: dict[str, st.SearchStrategy[Any]] = {
        "offer_id": st.one_of(_id_or(program.offer_id), json_scalars),
        "partner_id": st.one_of(_id_or(program.partner_id), json_scalars),
        "sub1": json_values,
        "sub2": json_texts,
        "source_id": json_texts,
    }
    method = draw(st.sampled_from(["GET"] * 3 + ["POST"] * 4 + ["OPTIONS", "PUT", "DELETE"]))
    if method == "POST":
        headers, raw = draw(body(fields))
        return Call(method, "/clk", headers=headers, body=raw)
    params = [(name, draw(st.one_of(_id_or(program.offer_id), texts))) for name in ("offer_id", "partner_id")]
    params += [("sub1", draw(texts))]
    invalid = not (_valid_id(params[0][1]) and _valid_id(params[1][1]))
    return Call(method, "/clk", params, must_not_write=invalid or method not in ("GET",))


def _postback_fields(program: Program) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "transaction_id": st.one_of(st.sampled_from(program.transaction_ids), json_texts),
        "secure": st.one_of(st.just(program.postback_token), json_texts),
        "amount": st.one_of(numbers, json_scalars),
        "event_id": st.one_of(_id_or(program.event_id), json_scalars),
        "event_name": st.one_of(st.just(program.event_name), json_texts),
        "order_id": json_texts,
        "currency": st.one_of(st.sampled_from(["USD", "usd", "ÄÖÜ", "US", "EURO"]), json_texts),
        "adv1": json_values,
    }


@st.composite
def postback_calls(draw: st.DrawFn, program: Program) -> Call:
    method = draw(st.sampled_from(["GET"] * 4 + ["POST"] * 4 + METHODS[:3]))
    fields = _postback_fields(program)
    if method == "POST":
        headers, raw = draw(body(fields))
        return Call(method, "/postback", headers=headers, body=raw)
    # half of them on a real click with the real token, so that the odd values reach the conversion itself
    params = [("transaction_id", draw(st.sampled_from(program.transaction_ids))), ("secure", program.postback_token)]
    params = params if draw(st.booleans()) else []
    params += [(name, str(draw(values))) for name, values in fields.items() if draw(st.booleans())]
    amount = dict(params).get("amount")
    odd_amount = amount not in (None, "") and re.fullmatch(r"[ \t]*-?([0-9]+\.?[0-9]*|\.[0-9]+)[ \t]*", amount) is None
    return Call(method, "/postback", params, must_not_write=odd_amount or method != "GET")


@st.composite
def pixel_calls(draw: st.DrawFn, program: Program) -> Call:
    offer = draw(_id_or(program.offer_id))
    params = [("offer_id", offer)]
    if draw(st.booleans()):
        params.append(("click_token", draw(st.one_of(texts, st.just(program.transaction_ids[0] + ".abc")))))
    params += [(name, str(draw(values))) for name, values in _postback_fields(program).items() if draw(st.booleans())]
    cookie = draw(st.one_of(texts, st.sampled_from(program.transaction_ids)))
    headers = {"cookie": f"tl_{offer}={quote(cookie, safe='')}"} if offer.isascii() and offer.isprintable() else {}
    method = draw(st.sampled_from(["GET"] * 6 + ["POST", "HEAD"]))
    return Call(method, "/pixel", params, headers=headers, must_not_write=not _valid_id(offer) or method != "GET")


def _message(program: Program) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.sampled_from(["track", "page", "identify", "screen", "group", "alias"]) | json_texts},
        optional={
            "messageId": json_texts,
            "userId": json_texts | json_scalars,
            "anonymousId": json_texts,
            "event": st.sampled_from(["Order Completed", "Signed Up"]) | json_texts,
            "timestamp": st.sampled_from(
                ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2024-02-30T00:00:00Z", "\x00"]
            )
            | json_texts,
            "properties": json_values,
            "traits": json_values,
            "context": st.fixed_dictionaries(
                {},
                optional={
                    "page": st.fixed_dictionaries(
                        {
                            "url": st.sampled_from(
                                ["http://[::1?tl_tid=x", f"https://s/?tl_tid={program.transaction_ids[2]}"]
                            )
                            | json_texts
                        }
                    )
                },
            ),
        },
    )


@st.composite
def segment_calls(draw: st.DrawFn, program: Program) -> Call:
    kind = draw(st.sampled_from(["batch", "b", "import", "track", "t", "page", "identify", "alias", "x" * 300]))
    auth = draw(st.sampled_from(["right", "right", "wrong", "none", "body", "garbage", "odd"]))
    headers = {"content-type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form"]))}
    headers |= {"right": {"authorization": basic(program.write_key)}, "wrong": {"authorization": basic("wk_nope")},
                "garbage": {"authorization": "Basic %%%"},
                "odd": {"authorization": basic(draw(texts))}}.get(auth, {})  # fmt: skip
    if draw(st.integers(0, 7)) == 0:
        key = quote(draw(st.one_of(texts, st.just(program.write_key))), safe="")
        return Call(draw(st.sampled_from(["GET", "OPTIONS", "POST"])), f"/v1/projects/{key}/settings")
    if draw(st.integers(0, 9)) == 0:
        raw = draw(deep_json())
    else:
        messages = draw(st.lists(_message(program), max_size=4))
        envelope: Any = {"batch": messages} if kind in ("batch", "b", "import") else (messages or [{}])[0]
        if auth == "body" and isinstance(envelope, dict):
            envelope["writeKey"] = program.write_key
        raw = _dump(draw(st.one_of(st.just(envelope), json_values)) if draw(st.integers(0, 5)) == 0 else envelope)
    if draw(st.integers(0, 5)) == 0:
        headers["content-encoding"] = "gzip"
        raw = draw(st.sampled_from([gzip.compress(raw), raw, gzip.compress(raw)[:-4]]))
    if draw(st.booleans()) and kind != "batch":
        return Call("POST", f"/v1/{kind}", headers=headers, body=raw)
    if draw(st.booleans()):
        source = draw(st.one_of(st.just(str(program.source_id)), st.sampled_from(ODD_IDS[:17]),
                                st.integers(0, 2**70).map(str)))  # fmt: skip
        headers["x-signature"] = draw(st.sampled_from([signature(raw, program.webhook_secret), "00", ""]))
        return Call("POST", f"/segment/{source}", headers=headers, body=raw)
    method = draw(st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE"]))
    return Call(method, f"/v1/{kind}", headers=headers, body=raw)


# ---------------------------------------------------------------------------------------------------------
# the harness


@dataclass
class Target:
    server: RunningServer
    program: Program
    counts: RowCounts
    client: httpx.Client
    statuses: dict[int, int] = field(default_factory=dict)

    def check(self, call: Call) -> httpx.Response:
        """Send the call; no 5xx, no hang, and no write when it was refused or had to be."""
        before = self.counts()
        headers = {"user-agent": BROWSER, **call.headers}
        # a lone surrogate goes out as the invalid UTF-8 it makes (one more odd encoding)
        query = urlencode([(name, value.encode("utf-8", "surrogatepass")) for name, value in call.params])
        url = call.path + ("?" + query if query else "")
        try:
            response = self.client.request(call.method, url, headers=headers, content=call.body)
        except httpx.TimeoutException:
            pytest.fail(f"no answer within {TIMEOUT} s: {call}")
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{call}\n-> {response.status_code} {response.text[:500]}"
        if call.must_not_write or (400 <= response.status_code < 500 and not call.refusal_is_recorded):
            after = self.counts()
            assert after == before, f"{call}\n-> {response.status_code} wrote {_changed(before, after)}"
        return response


def _changed(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


@pytest.fixture
def target(database_url: str) -> Iterator[Target]:
    with running_server(database_url, delivery_in_serve=False) as server:
        program = seed(server.base_url, server.admin_key)
        counts = RowCounts(database_url)
        with httpx.Client(base_url=server.base_url, timeout=TIMEOUT, follow_redirects=False) as client:
            yield Target(server, program, counts, client)
        counts.close()


def _fuzz(target: Target, calls: Any, max_examples: int) -> None:
    @settings(
        max_examples=examples(max_examples),
        deadline=None,  # the server's time is bounded by the request timeout instead
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        target.check(data.draw(calls(target.program)))

    run()
    print(f"{calls.__name__}: statuses {dict(sorted(target.statuses.items()))}")


def test_tracking_links_never_fail_on_bad_input(target: Target) -> None:
    _fuzz(target, redirect_calls, 60)


def test_server_side_clicks_never_fail_on_bad_input(target: Target) -> None:
    _fuzz(target, click_calls, 80)


def test_postbacks_never_fail_on_bad_input(target: Target) -> None:
    _fuzz(target, postback_calls, 100)


def test_the_pixel_never_fails_on_bad_input(target: Target) -> None:
    _fuzz(target, pixel_calls, 50)


def test_segment_intake_never_fails_on_bad_input(target: Target) -> None:
    _fuzz(target, segment_calls, 80)


# ---------------------------------------------------------------------------------------------------------
# the grammar, case by case (one server per test: each case is a request)

BAD_PATH_IDS = ["%D9%A1", "%C2%B2", "%EF%BC%91", "1_0", "+1", "%201", "0", str(MAX_ID + 1), "9" * 400, "9" * 5000]


def test_a_tracking_link_id_is_ascii_digits_below_2_63_else_the_404_page(target: Target) -> None:
    program = target.program
    for raw in BAD_PATH_IDS:
        for path in (f"/r/{raw}/{program.partner_id}", f"/r/{program.offer_id}/{raw}"):
            response = target.check(Call("GET", path, must_not_write=True))
            assert response.status_code == 404 and "not available" in response.text, path
    good = target.check(Call("GET", f"/r/{program.offer_id}/{program.partner_id}"))
    assert good.status_code == 302


BAD_CLICK_IDS: list[tuple[str, str, object]] = [
    ("query", "offer_id", "\u0661"),
    ("query", "partner_id", "1_0"),
    ("query", "offer_id", str(MAX_ID + 1)),
    ("query", "offer_id", "\u00b2"),
    ("json", "offer_id", MAX_ID + 1),
    ("json", "partner_id", 2**64),
    ("json", "offer_id", "\uff11"),
    ("json", "offer_id", 1.0),
    ("json", "offer_id", True),
]


def test_a_server_side_click_names_the_bad_id(target: Target) -> None:
    program = target.program
    for where, name, value in BAD_CLICK_IDS:
        params = {"offer_id": program.offer_id, "partner_id": program.partner_id, name: value}
        if where == "query":
            call = Call("GET", "/clk", [(key, str(v)) for key, v in params.items()], must_not_write=True)
        else:
            call = Call("POST", "/clk", headers={"content-type": "application/json"}, body=_dump(params))
            call.must_not_write = True
        response = target.check(call)
        assert response.status_code == 400 and response.json()["field"] == name, (where, value, response.text)
    good = target.check(Call("GET", "/clk", [("offer_id", str(program.offer_id)), ("partner_id", "1")]))
    assert good.status_code == 200


BAD_POSTBACK_VALUES = [
    ("amount", "1_000"),
    ("amount", "\u0661\u0662"),
    ("amount", "\uff11"),
    ("amount", "1e3"),
    ("amount", "NaN"),
    ("amount", "Infinity"),
    ("amount", "1.2.3"),
    ("amount", "12,50"),
    ("amount", "+5"),
    ("amount", "1" * 5000),
    ("event_id", "\u0661"),
    ("event_id", "1_0"),
    ("event_id", str(MAX_ID + 1)),
    ("currency", "\u00c4\u00d6\u00dc"),
    ("order_id", "o" * 256),
    ("adv1", "a" * 256),
    ("transaction_id", "t" * 65),
    ("order_id", "a\x00b"),
]


def test_a_postback_number_is_ascii_digits_with_one_point(target: Target) -> None:
    program = target.program
    for name, value in BAD_POSTBACK_VALUES:
        params = {"transaction_id": program.transaction_ids[3], "secure": program.postback_token, name: value}
        response = target.check(Call("GET", "/postback", list(params.items()), must_not_write=True))
        assert response.status_code == 400 and response.json()["field"] == name, (name, value, response.text)
    for n, value in enumerate(["12.50", "12", " 12.5 ", "0.5", ".5", "12."]):
        event = {"event_name": program.event_name, "order_id": f"plain-{n}"}
        params = {"transaction_id": program.transaction_ids[0], "secure": program.postback_token, "amount": value}
        response = target.check(Call("GET", "/postback", list({**params, **event}.items())))
        assert response.status_code == 200 and response.json()["result"] == "accepted", (value, response.text)


def test_a_lone_surrogate_or_a_non_ascii_token_is_refused(target: Target) -> None:
    program = target.program
    for name in ("order_id", "event_name", "adv1", "transaction_id"):
        body = {"transaction_id": program.transaction_ids[3], "secure": program.postback_token, name: "a\ud800"}
        call = Call("POST", "/postback", headers={"content-type": "application/json"}, body=_dump(body))
        call.must_not_write = True
        response = target.check(call)
        assert response.status_code == 400 and response.json()["field"] == name, response.text
    params = [("transaction_id", program.transaction_ids[3]), ("secure", program.postback_token + "\u00e9")]
    refused = target.check(Call("GET", "/postback", params, must_not_write=True))
    assert refused.status_code == 403 and refused.json()["error"] == "invalid_token", refused.text


def test_sub_ids_are_kept_to_255_characters_without_control_characters(target: Target) -> None:
    program = target.program
    params = [("offer_id", str(program.offer_id)), ("partner_id", str(program.partner_id)),
              ("sub1", "s" * 300), ("sub2", "a\x00b\x1fc")]  # fmt: skip
    response = target.check(Call("GET", "/clk", params))
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {target.server.admin_key}"}
    click = target.client.get(f"/api/v1/clicks/{response.json()['transaction_id']}", headers=headers).json()
    assert (click["sub1"], click["sub2"]) == ("s" * 255, "abc")
