"""Every page of the console and portals escapes what it shows, refuses a form without its CSRF token and
never fails: a crawl through every link each role can reach, with markup in every field a user can set."""

from __future__ import annotations

from collections import deque
from urllib.parse import urlsplit

import httpx
import pytest

from tests import factories
from tests.console import parsed, person, signed_in
from tests.servers import RunningServer
from tracklane.domain.model import Role

MARKUP = "<b id=x>\"'&<script>alert(1)</script>"
RAW = ("<b id=x>", "<script>alert(1)</script>")
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}
MAX_PAGES = 150


def _program_full_of_markup(api: httpx.Client, web: httpx.Client, server: RunningServer) -> dict[str, int]:
    adv = factories.advertiser(api, name=f"Adv {MARKUP}")
    offer = factories.offer(api, adv["id"], name=f"Offer {MARKUP}")
    factories.event(api, offer["id"], name=f"purchase {MARKUP}")
    partner = factories.partner(api, name=f"Partner {MARKUP}")
    factories.created(api.post("/api/v1/sources", json={"name": f"Source {MARKUP}", "advertiser_id": adv["id"]}))
    pb = {
        "partner_id": partner["id"],
        "url": "https://p.example/pb?t={transaction_id}",
        "success_body_contains": MARKUP,
    }
    factories.created(api.post("/api/v1/partner-postbacks", json=pb))  # its turn-off, test and delete forms
    tid = factories.click(web, offer["id"], partner["id"], sub1=MARKUP, sub2=MARKUP, source_id=MARKUP)
    postback = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "adv1": MARKUP})
    assert postback.status_code == 200, postback.text
    conversions = api.get("/api/v1/conversions").json()["data"]
    reason = {"status": "rejected", "reason": f"Because {MARKUP}"}
    assert api.patch(f"/api/v1/conversions/{conversions[0]['id']}", json=reason).status_code == 200
    factories.created(api.post("/api/v1/traffic-rules", json={"kind": "block", "name": f"Block {MARKUP}",
                                                             "variable": "sub3", "values": [MARKUP]}))  # fmt: skip
    rule = factories.created(api.post("/api/v1/traffic-rules", json={
        "kind": "optimize", "name": f"Optimize {MARKUP}", "variable": "sub1", "min_clicks": 1,
        "cvr_below_percent": 50}))  # fmt: skip
    (block,) = api.post(f"/api/v1/traffic-rules/{rule['id']}/evaluate").json()["blocks"]  # its lift form
    assert block["value"] == MARKUP
    return {"advertiser": adv["id"], "partner": partner["id"], "offer": offer["id"]}


def _crawl(client: httpx.Client, start: str) -> dict[str, str]:
    """Every /ui/ page reachable from `start` by GET links (downloads and sign-out aside): path -> HTML."""
    seen: dict[str, str] = {}
    queue = deque([start])
    while queue and len(seen) < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        answer = client.get(path)
        assert answer.status_code < 500, f"{path} answered {answer.status_code}"
        assert answer.status_code in (200, 400, 404), f"{path} answered {answer.status_code}"
        if not answer.headers.get("content-type", "").startswith("text/html"):
            continue
        seen[path] = answer.text
        assert "default-src 'none'" in answer.headers["content-security-policy"], path
        for link in parsed(answer.text).links:
            target = urlsplit(link)
            if target.netloc or not target.path.startswith("/ui/") or target.path.startswith("/ui/static/"):
                continue
            queue.append(target.path + (f"?{target.query}" if target.query else ""))
    return seen


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_page_escapes_markup_and_every_form_needs_its_csrf_token(
    api: httpx.Client, server: RunningServer
) -> None:
    with httpx.Client(base_url=server.base_url, headers=BROWSER) as web:
        owners = _program_full_of_markup(api, web, server)
    people = {
        Role.ADMIN: person(server, Role.ADMIN, name=f"Admin {MARKUP}"),
        Role.ADVERTISER: person(server, Role.ADVERTISER, owners["advertiser"], name=f"Adv person {MARKUP}"),
        Role.PARTNER: person(server, Role.PARTNER, owners["partner"], name=f"Partner person {MARKUP}"),
    }
    forms_checked = 0
    for role, email in people.items():
        with signed_in(server, email) as client:
            pages = _crawl(client, "/ui/")
            assert len(pages) >= 4, f"{role.value} reaches only {sorted(pages)}"
            for path, html in pages.items():
                for raw in RAW:
                    assert raw not in html, f"{path} ({role.value}) shows unescaped markup"
                for form in parsed(html).forms:
                    if form["method"] != "post":
                        continue
                    fields = {name: value for name, value in form["fields"].items() if name != "csrf_token"}
                    answer = client.post(form["action"] or path, data=fields, follow_redirects=False)
                    assert answer.status_code == 403, f"{form['action']} on {path} took a form without its CSRF token"
                    forms_checked += 1
    assert forms_checked >= 10
