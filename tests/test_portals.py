"""The partner portal and the advertiser portal over HTTP: every page of each, as its role sees it (a partner
never sees revenue, the sale amount of an offer that does not share it, adv1..5 or the advertiser's landing
page; an advertiser never sees payout), their forms (with and without the CSRF token), and the other roles'
pages answering 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests import factories
from tests.console import csrf_of, parsed, person, signed_in
from tests.servers import RunningServer
from tracklane.domain.model import Role

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}
REVENUE, PAYOUT = "77.77", "11.11"
EVENT_REVENUE, EVENT_PAYOUT = "66.66", "4.44"
GATED_REVENUE, GATED_PAYOUT = "55.55", "9.99"
SALE = "123.45"
ADV1 = "advsecret1"
#: What no partner page may show: the advertiser's money, its pass-through values and its landing page.
HIDDEN_FROM_PARTNER = (REVENUE, EVENT_REVENUE, GATED_REVENUE, SALE, ADV1, "shop.example/land", "Acme Brand")
#: What no advertiser page may show: the partners' payout.
HIDDEN_FROM_ADVERTISER = (PAYOUT, EVENT_PAYOUT, GATED_PAYOUT)
TIMES = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}|Z)?")


def _cpa(amount: str) -> dict[str, str]:
    return {"type": "cpa", "amount": amount}


def _program(api: httpx.Client, server: RunningServer) -> dict[str, Any]:
    adv = factories.advertiser(api, name="Acme Brand")
    open_offer = factories.offer(api, adv["id"], name="Spring sale", revenue=_cpa(REVENUE), payout=_cpa(PAYOUT))
    event = factories.event(api, open_offer["id"], name="upsell", revenue={"type": "fixed", "amount": EVENT_REVENUE},
                            payout={"type": "fixed", "amount": EVENT_PAYOUT})  # fmt: skip
    gated = factories.offer(api, adv["id"], name="Gated deal", visibility="approval_required",
                            revenue=_cpa(GATED_REVENUE), payout=_cpa(GATED_PAYOUT))  # fmt: skip
    secret = factories.offer(api, adv["id"], name="Hidden private", visibility="private")
    rival = factories.advertiser(api, name="Rival Brand")
    rival_offer = factories.offer(api, rival["id"], name="Rival offer", visibility="private")
    partner = factories.partner(api, name="Deal Hunters")
    source = factories.created(api.post("/api/v1/sources", json={"name": "Web shop", "advertiser_id": adv["id"]}))
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30) as web:
        tid = factories.click(web, open_offer["id"], partner["id"], sub1="nl-spring")
        answer = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                              "amount": SALE, "order_id": "ord-1", "adv1": ADV1})  # fmt: skip
        assert answer.status_code == 200, answer.text
        own = answer.json()["conversion_id"]
    rival_partner = factories.partner(api)
    factories.created(api.post("/api/v1/offer-access", json={"offer_id": rival_offer["id"],
                                                             "partner_id": rival_partner["id"]}))  # fmt: skip
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30) as web:
        rival_tid = factories.click(web, rival_offer["id"], rival_partner["id"])
        answer = web.get("/postback", params={"transaction_id": rival_tid, "secure": rival["postback_token"]})
        assert answer.status_code == 200, answer.text
    return {
        "advertiser": adv, "offer": open_offer, "event": event, "gated": gated, "secret": secret, "partner": partner,
        "source": source, "tid": tid, "conversion": own,
        "rival_conversion": answer.json()["conversion_id"],
    }  # fmt: skip


def _page(client: httpx.Client, path: str, hidden: tuple[str, ...], status: int = 200) -> str:
    answer = client.get(path)
    assert answer.status_code == status, f"{path}: {answer.status_code} {answer.text[:500]}"
    # Times carry microseconds ("14:09:19.990786"), which can spell a hidden amount: they are no money.
    text = TIMES.sub("<time>", answer.text)
    for value in hidden:
        assert value not in text, f"{path} shows {value!r}"
    for form in parsed(answer.text).forms:
        if form["method"] == "post" and form["action"] != "/ui/sign-out":
            fields = {name: value for name, value in form["fields"].items() if name != "csrf_token"}
            refused = client.post(form["action"], data=fields, follow_redirects=False)
            assert refused.status_code == 403, f"{form['action']} on {path} took a form without its CSRF token"
    return answer.text


def _post(client: httpx.Client, path: str, html: str, **fields: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_of(html), **fields})


def test_the_partner_portal_shows_the_partners_side_only(api: httpx.Client, server: RunningServer) -> None:
    program = _program(api, server)
    offer, gated, partner = program["offer"], program["gated"], program["partner"]
    with signed_in(server, person(server, Role.PARTNER, partner["id"])) as client:
        home = _page(client, "/ui/p/", HIDDEN_FROM_PARTNER)
        assert "Welcome, Deal Hunters" in home and "$11.11" in home and 'data-chart="partner-days"' in home
        assert "Spring sale" in home

        market = _page(client, "/ui/p/marketplace", HIDDEN_FROM_PARTNER)
        assert "Spring sale" in market and "Gated deal" in market and "Hidden private" not in market
        assert "$9.99 per action (CPA)" in market
        assert f'action="/ui/p/marketplace/{gated["id"]}/request"' in market
        assert "Gated deal" in _page(client, "/ui/p/marketplace?visibility=approval_required", HIDDEN_FROM_PARTNER)
        _page(client, "/ui/p/marketplace?visibility=private", (), 400)

        refused = client.post(f"/ui/p/marketplace/{gated['id']}/request", data={}, follow_redirects=False)
        assert refused.status_code == 403
        requested = _post(client, f"/ui/p/marketplace/{gated['id']}/request", market)
        assert requested.status_code == 200 and "Access to Gated deal requested" in requested.text
        access = api.get("/api/v1/offer-access", params={"partner_id": partner["id"]}).json()["data"]
        assert [(a["offer_id"], a["status"]) for a in access] == [(gated["id"], "requested")]
        again = _post(client, f"/ui/p/marketplace/{gated['id']}/request", requested.text)
        assert "already requested" in again.text
        assert _post(client, f"/ui/p/marketplace/{program['secret']['id']}/request", again.text).status_code == 404

        offers = _page(client, "/ui/p/offers", HIDDEN_FROM_PARTNER)
        link = f"{server.settings.base_url}/r/{offer['id']}/{partner['id']}"
        assert link in offers and "Gated deal" not in offers and 'data-copy="link-' in offers
        detail = _page(client, f"/ui/p/offers/{offer['id']}", HIDDEN_FROM_PARTNER)
        assert f'data-link-base="{link}"' in detail and 'data-link-part="sub5"' in detail
        assert "$4.44" in detail and "upsell" in detail
        pending = _page(client, f"/ui/p/offers/{gated['id']}", HIDDEN_FROM_PARTNER)
        assert "data-link-builder" not in pending and "review it" in pending
        _page(client, f"/ui/p/offers/{program['secret']['id']}", (), 404)

        stats = _page(client, "/ui/p/stats", HIDDEN_FROM_PARTNER)
        assert "$11.11" in stats and 'data-chart="partner-stats"' in stats
        by_offer = _page(client, f"/ui/p/stats?group_by=offer&offer_id={offer['id']}", HIDDEN_FROM_PARTNER)
        assert "Spring sale" in by_offer and "<tfoot>" in by_offer
        today = datetime.now(UTC).date()
        week = f"from={today - timedelta(days=6)}&to={today}"
        assert "nl-spring" in _page(client, f"/ui/p/stats?group_by=sub1&{week}", HIDDEN_FROM_PARTNER)
        assert "from: the range" in _page(client, "/ui/p/stats?from=2020-01-01&to=2100-01-01", (), 400)
        _page(client, "/ui/p/stats?group_by=revenue", (), 400)
        _page(client, "/ui/p/stats?from=yesterday", (), 400)

        conversions = _page(client, "/ui/p/conversions", HIDDEN_FROM_PARTNER)
        assert program["tid"] in conversions and "$11.11" in conversions and "ord-1" in conversions
        empty = _page(client, "/ui/p/conversions?status=rejected", HIDDEN_FROM_PARTNER)
        assert "No conversions match these filters" in empty

        _postbacks(api, server, client, program)

        for other in ("/ui/offers", "/ui/a/", "/ui/a/integration", f"/ui/a/conversions/{program['conversion']}"):
            _page(client, other, (), 404)


def _postbacks(api: httpx.Client, server: RunningServer, client: httpx.Client, program: dict[str, Any]) -> None:
    offer, partner = program["offer"], program["partner"]
    listing = _page(client, "/ui/p/postbacks", HIDDEN_FROM_PARTNER)
    assert "No postbacks yet" in listing and "{transaction_id}" in listing and "{revenue}" not in listing
    assert client.post("/ui/p/postbacks", data={"url": "https://x.example/"}, follow_redirects=False).status_code == 403

    hidden = _post(client, "/ui/p/postbacks", listing, url="https://partner.example/pb?r={revenue}")
    assert hidden.status_code == 400 and "url:" in hidden.text and "partner.example/pb?r={revenue}" in hidden.text
    template = "https://partner.example/pb?tid={transaction_id}&p={payout}&s={sub1}"
    saved = _post(client, "/ui/p/postbacks", listing, url=template, offer_id=str(offer["id"]), on="conversion",
                  method="GET", delay_seconds="0")  # fmt: skip
    assert saved.status_code == 200 and "Postback #" in saved.text
    (postback,) = api.get("/api/v1/partner-postbacks", params={"partner_id": partner["id"]}).json()["data"]
    assert postback["url"] == template and postback["offer_id"] == offer["id"]

    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30) as web:
        tid = factories.click(web, offer["id"], partner["id"], sub1="fired")
        answer = web.get("/postback", params={"transaction_id": tid, "secure": program["advertiser"]["postback_token"]})
        assert answer.status_code == 200, answer.text
    log = _page(client, f"/ui/p/postbacks/{postback['id']}", HIDDEN_FROM_PARTNER)
    assert f"tid={tid}&amp;p=11.11&amp;s=fired" in log

    off = _post(client, f"/ui/p/postbacks/{postback['id']}/status", saved.text, status="inactive")
    assert off.status_code == 200 and "turned off" in off.text
    assert api.get(f"/api/v1/partner-postbacks/{postback['id']}").json()["status"] == "inactive"
    on = _post(client, f"/ui/p/postbacks/{postback['id']}/status", off.text, status="active")
    assert "active again" in on.text
    tested = _post(client, f"/ui/p/postbacks/{postback['id']}/test", on.text)
    assert tested.url.path == f"/ui/p/postbacks/{postback['id']}" and "Test sent to your URL" in tested.text
    assert ' <span class="status">test</span></td>' in tested.text and f"tid={'0' * 32}&amp;p=1.00" in tested.text

    other = factories.partner(api)
    with signed_in(server, person(server, Role.PARTNER, other["id"])) as stranger:
        _page(stranger, f"/ui/p/postbacks/{postback['id']}", (), 404)
        page = _page(stranger, "/ui/p/postbacks", ())
        assert _post(stranger, f"/ui/p/postbacks/{postback['id']}/status", page, status="inactive").status_code == 404
        for action in ("test", "delete"):
            assert _post(stranger, f"/ui/p/postbacks/{postback['id']}/{action}", page).status_code == 404, action
        assert "partner.example" not in page

    deleted = _post(client, f"/ui/p/postbacks/{postback['id']}/delete", tested.text)
    assert deleted.url.path == "/ui/p/postbacks" and "deleted: it fires no more" in deleted.text
    assert "No postbacks yet" in deleted.text
    assert api.get(f"/api/v1/partner-postbacks/{postback['id']}").status_code == 404
    _page(client, f"/ui/p/postbacks/{postback['id']}", (), 404)


def test_a_partner_in_review_or_rejected_sees_only_its_status(api: httpx.Client, server: RunningServer) -> None:
    applied = factories.created(api.post("/api/v1/partner-signups", json={"name": "New Kid", "email": "kid@x.example"}))
    factories.offer(api, factories.advertiser(api)["id"], name="Some offer")
    with signed_in(server, person(server, Role.PARTNER, applied["id"])) as client:
        home = _page(client, "/ui/p/", ("Some offer",))
        assert "Your application is in review" in home
        market = _page(client, "/ui/p/marketplace", ("Some offer",), 403)
        assert "in review" in market
        api.post(f"/api/v1/partners/{applied['id']}/verdict", json={"verdict": "rejected", "reason": "no site"})
        rejected = _page(client, "/ui/p/", ("Some offer",))
        assert "Your application was not accepted" in rejected and "Why:</strong> no site" in rejected
        _page(client, "/ui/p/offers", ("Some offer",), 403)


def test_the_advertiser_portal_shows_what_it_owes_and_reviews_conversions(
    api: httpx.Client, server: RunningServer
) -> None:
    program = _program(api, server)
    adv, offer, event, conversion = program["advertiser"], program["offer"], program["event"], program["conversion"]
    with signed_in(server, person(server, Role.ADVERTISER, adv["id"])) as client:
        home = _page(client, "/ui/a/", HIDDEN_FROM_ADVERTISER)
        assert "Acme Brand" in home and "$77.77" in home and 'data-chart="advertiser-days"' in home

        offers = _page(client, "/ui/a/offers", HIDDEN_FROM_ADVERTISER)
        assert "Spring sale" in offers and "$77.77 per action (CPA)" in offers and "Rival offer" not in offers
        assert "shop.example/land" in offers
        assert "No paused offers" in _page(client, "/ui/a/offers?status=paused", ())

        listing = _page(client, "/ui/a/conversions", HIDDEN_FROM_ADVERTISER)
        assert "$123.45" in listing and "$77.77" in listing and f"/ui/a/conversions/{conversion}" in listing
        detail = _page(client, f"/ui/a/conversions/{conversion}", HIDDEN_FROM_ADVERTISER)
        assert '<ol class="trace">' in detail and ADV1 in detail and "token" in detail
        _page(client, f"/ui/a/conversions/{program['rival_conversion']}", (), 404)

        refused = client.post(f"/ui/a/conversions/{conversion}/status", data={"status": "rejected", "reason": "x"},
                              follow_redirects=False)  # fmt: skip
        assert refused.status_code == 403
        no_reason = _post(client, f"/ui/a/conversions/{conversion}/status", listing, status="rejected")
        assert "reason is required" in no_reason.text
        assert api.get(f"/api/v1/conversions/{conversion}").json()["status"] == "approved"
        rejected = _post(client, f"/ui/a/conversions/{conversion}/status", listing, status="rejected",
                         reason="test order", back="/ui/a/conversions?status=rejected")  # fmt: skip
        assert rejected.url.path == "/ui/a/conversions" and "status=rejected" in str(rejected.url)
        assert f"Conversion #{conversion} is rejected" in rejected.text
        changed = api.get(f"/api/v1/conversions/{conversion}").json()
        assert changed["status"] == "rejected" and changed["status_reason"] == "test order"
        outside = _post(client, f"/ui/a/conversions/{conversion}/status", rejected.text, status="approved",
                        back="https://evil.example/")  # fmt: skip
        assert outside.url.path == "/ui/a/conversions" and "is approved" in outside.text
        rival = _post(client, f"/ui/a/conversions/{program['rival_conversion']}/status", listing, status="approved")
        assert rival.status_code == 404

        stats = _page(client, "/ui/a/stats", HIDDEN_FROM_ADVERTISER)
        assert "$77.77" in stats and "<tfoot>" in stats
        by_partner = _page(client, "/ui/a/stats?group_by=partner", HIDDEN_FROM_ADVERTISER)
        assert f"Partner #{program['partner']['id']}" in by_partner and "Deal Hunters" not in by_partner
        assert "Spring sale" in _page(client, "/ui/a/stats?group_by=offer", HIDDEN_FROM_ADVERTISER)
        _page(client, "/ui/a/stats?group_by=payout", (), 400)

        integration = _page(client, "/ui/a/integration", HIDDEN_FROM_ADVERTISER)
        base = server.settings.base_url
        assert adv["postback_token"] in integration and program["source"]["write_key"] in integration
        postback = f"{base}/postback?transaction_id={{transaction_id}}&amp;secure={adv['postback_token']}"
        assert postback in integration and f"event_id={event['id']}" in integration
        assert f"{base}/pixel?offer_id={offer['id']}" in integration
        assert f"{base}/segment/{program['source']['id']}" in integration
        assert "Rival" not in integration

        for other in ("/ui/offers", "/ui/p/", "/ui/p/marketplace", "/ui/users"):
            _page(client, other, (), 404)
