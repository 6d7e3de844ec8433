"""The browser SDK's server side, through a real server without a browser: `/sdk.js` and its caching
headers, the `{click_token}` destination macro, `/clk`'s cookie lifetime and the pixel's `sdk` label
(the offer's `sdk` conversion method). The SDK itself runs in Chromium in test_sdk_browser.py."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer
from tracklane.web import sdk

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _conversions(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/conversions", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _visitor(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"user-agent": BROWSER}, timeout=30)


def test_sdk_js_is_served_as_cacheable_versioned_javascript(web: httpx.Client) -> None:
    plain = web.get("/sdk.js", headers={"Origin": "https://shop.example"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "application/javascript; charset=utf-8"
    assert plain.headers["access-control-allow-origin"] == "*"
    assert plain.headers["cross-origin-resource-policy"] == "cross-origin"
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert plain.headers["cache-control"] == "public, max-age=300"
    assert re.fullmatch(r'"[0-9a-f]{32}"', plain.headers["etag"])
    assert f'var VERSION = "{sdk.VERSION}";' in plain.text
    assert plain.headers["x-tracklane-sdk-version"] == sdk.VERSION
    assert "window.Tracklane = Tracklane" in plain.text and "window.EF = EF" in plain.text

    pinned = web.get("/sdk.js", params={"v": sdk.VERSION})
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert pinned.content == plain.content and pinned.headers["etag"] == plain.headers["etag"]
    other = web.get("/sdk.js", params={"v": "0.0.1"})  # a version this server does not have: not kept long
    assert other.status_code == 200 and other.headers["cache-control"] == "public, max-age=300"

    again = web.get("/sdk.js", params={"v": sdk.VERSION}, headers={"If-None-Match": plain.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == plain.headers["etag"]
    assert again.headers["cache-control"] == pinned.headers["cache-control"]
    stale = web.get("/sdk.js", headers={"If-None-Match": '"0123"'})
    assert stale.status_code == 200 and stale.content == plain.content

    head = web.head("/sdk.js")
    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", plain.headers["etag"])


def test_sdk_js_is_es2017_without_eval_or_dom_writes() -> None:
    """What a strict CSP or an older browser would refuse: string code, inline styles, newer syntax."""
    source = sdk.SCRIPT.decode()
    for forbidden in ("eval(", "new Function", "innerHTML", "document.write", ".style", 'setTimeout("'):
        assert forbidden not in source, forbidden
    code = re.sub(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'", '""', source, flags=re.S)
    assert "?." not in code and "??" not in code  # ES2020
    assert not re.search(r"[{,]\s*\.\.\.", code)  # object spread and rest properties (ES2018)
    assert not re.search(r"catch\s*\{", code)  # optional catch binding (ES2019)


def test_a_destination_url_can_carry_the_click_token(api: httpx.Client, server: RunningServer) -> None:
    """A redirect link's landing page receives `{click_token}`: the SDK there converts that click by pixel."""
    _, offer, partner = factories.program(
        api, destination_url="https://shop.example/land?oid={offer_id}&tl_tid={transaction_id}&tl_ct={click_token}"
    )
    with _visitor(server) as visitor:
        redirect = visitor.get(f"/r/{offer['id']}/{partner['id']}")
        assert redirect.status_code == 302
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        tid = redirect.cookies[f"tl_{offer['id']}"]
        assert query["tl_tid"] == [tid] and query["oid"] == [str(offer["id"])]
        assert re.fullmatch(rf"{tid}\.[0-9a-f]{{32}}", query["tl_ct"][0])
        # the same token as /clk would issue for this click: the pixel accepts it
        pixel = visitor.get("/pixel", params={"offer_id": offer["id"], "click_token": query["tl_ct"][0],
                                              "amount": "20.00", "sdk": sdk.VERSION})  # fmt: skip
        assert pixel.headers["content-type"] == "image/gif"
    [conversion] = _conversions(api, transaction_id=tid)
    assert (conversion["origin"], conversion["amount"]) == ("sdk", "20.00")
    assert [(s["step"], s["outcome"]) for s in conversion["trace"]][:3:2] == [
        ("click_token", "valid"),
        ("method", "sdk"),
    ]
    head = httpx.head(f"{server.base_url}/r/{offer['id']}/{partner['id']}", headers={"user-agent": BROWSER})
    assert head.headers["location"].endswith("&tl_tid=&tl_ct=")  # HEAD records no click: no id, no token


def test_click_token_is_a_destination_macro_only(api: httpx.Client) -> None:
    _, offer, partner = factories.program(api)
    body = {"partner_id": partner["id"], "url": "https://partner.example/pb?t={click_token}"}
    refused = api.post("/api/v1/partner-postbacks", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == "url" and "{click_token}" in refused.json()["message"]
    fallback = api.patch(
        f"/api/v1/offers/{offer['id']}", json={"fallback_url": "https://shop.example/?c={click_token}"}
    )
    assert fallback.status_code == 200, fallback.text


def test_clk_tells_how_long_to_keep_the_click(api: httpx.Client, server: RunningServer) -> None:
    _, offer, partner = factories.program(api, attribution_window_days=7)
    with _visitor(server) as visitor:
        issued = visitor.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
        unknown = visitor.get("/clk", params={"offer_id": 999999, "partner_id": partner["id"]}).json()
    assert (issued["cookie_days"], issued["verdict"]) == (7, "accepted")
    assert (unknown["cookie_days"], unknown["click_token"]) == (30, None)


@pytest.mark.parametrize(
    ("methods", "labelled", "converts"),
    [
        (["sdk"], True, True),
        (["sdk"], False, False),  # a plain pixel is the `pixel` method
        (["pixel"], True, False),  # an SDK conversion is the `sdk` method
        (["pixel"], False, True),
    ],
)
def test_the_sdk_label_makes_a_pixel_an_sdk_conversion(
    api: httpx.Client,
    server: RunningServer,
    caplog: pytest.LogCaptureFixture,
    methods: list[str],
    labelled: bool,
    converts: bool,
) -> None:
    """The label changes only which conversion method of the offer is checked: the proof is the same."""
    caplog.set_level(logging.INFO, logger="tracklane.tracking")
    _, offer, partner = factories.program(api, conversion_methods=methods)
    with _visitor(server) as visitor:
        issued = visitor.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
        params = {"offer_id": offer["id"], "click_token": issued["click_token"], **({"sdk": "1"} if labelled else {})}
        visitor.get("/pixel", params=params)
        bare = {"offer_id": offer["id"], "transaction_id": issued["transaction_id"], "sdk": "1"}
        visitor.get("/pixel", params=bare)  # the label proves nothing: still no conversion without the token
    found = _conversions(api, transaction_id=issued["transaction_id"])
    assert len(found) == (1 if converts else 0)
    if converts:
        assert found[0]["origin"] == "sdk"
    else:
        channel = "sdk" if labelled else "pixel"
        refusals = [r.getMessage() for r in caplog.records if "method_not_enabled" in r.getMessage()]
        assert refusals == [f"pixel conversion refused: method_not_enabled offer #{offer['id']} does not accept "
                            f"conversions by {channel}"]  # fmt: skip
