"""The admin console through a real server: every page of the menu answers and shows what it should, and its forms
create, change and decide what the API would (offers with caps and events, partner verdicts, offer access,
conversion decisions and the review queue with undo, people and their one-time links, webhooks, sources),
refusing bad input with a 400 naming the field and any form without its CSRF token with a 403."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests import factories
from tests.console import csrf_of, parsed, person, signed_in
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server, sqlite_url
from tracklane.domain.model import Role

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}
MENU = ("/ui/", "/ui/offers", "/ui/advertisers", "/ui/partners", "/ui/conversions", "/ui/review", "/ui/reports",
        "/ui/customers", "/ui/webhooks", "/ui/partner-postbacks", "/ui/sources", "/ui/users")  # fmt: skip


@dataclass
class Console:
    """One server for the module (users cost a password hash each), its admin API client and an admin's session."""

    server: RunningServer
    api: httpx.Client
    admin: httpx.Client


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("TRACKLANE_") and n != POSTGRES_ENV]:
            env.delenv(name)
        with ExitStack() as stack:
            if request.param == "sqlite":
                url = sqlite_url(tmp_path_factory.mktemp("console"))
            elif os.environ.get(POSTGRES_ENV):
                url = stack.enter_context(postgres_database())
            else:
                pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
            server = stack.enter_context(running_server(url))
            headers = {"Authorization": f"Bearer {server.admin_key}"}
            api = stack.enter_context(httpx.Client(base_url=server.base_url, headers=headers, timeout=30))
            admin = stack.enter_context(signed_in(server, person(server, Role.ADMIN)))
            yield Console(server, api, admin)


def _program(api: httpx.Client, server: RunningServer) -> dict[str, Any]:
    """An advertiser with a USD offer (revenue 12.34, payout 5.67) and a pending-by-default offer, a partner with
    a click and a conversion on each."""
    adv = factories.advertiser(api, name="Acme Shoes")
    offer = factories.offer(api, adv["id"], name="Running shoes", revenue={"type": "cpa", "amount": "12.34"},
                            payout={"type": "cpa", "amount": "5.67"})  # fmt: skip
    held = factories.offer(api, adv["id"], name="Held offer", default_status="pending")
    partner = factories.partner(api, name="Deal Blog")
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30) as web:
        conversions = []
        for target in (offer, held):
            tid = factories.click(web, target["id"], partner["id"], sub1="spring")
            answer = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                                  "amount": "80.00", "order_id": f"o-{target['id']}"})  # fmt: skip
            assert answer.status_code == 200, answer.text
            conversions.append(answer.json()["conversion_id"])
    return {"advertiser": adv, "offer": offer, "held": held, "partner": partner, "conversions": conversions}


class _Selects(HTMLParser):
    """The value each `<select>` of each form sends as the page shows it (its selected option, else its first)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self._select: str | None = None
        self._chosen = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "select" and self.forms:
            self._select, self._chosen = values.get("name"), False
        elif tag == "option" and self._select and not self._chosen:
            selects = self.forms[-1][1]
            if "selected" in values or self._select not in selects:
                selects[self._select] = values.get("value", "")
                self._chosen = "selected" in values

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def _form(html: str, action: str) -> dict[str, str]:
    """What the page's first form posting to `action` sends as it is shown."""
    found = next(f for f in parsed(html).forms if f["action"] == action and f["method"] == "post")
    selects = _Selects()
    selects.feed(html)
    chosen = next(values for target, values in selects.forms if target == action)
    fields: dict[str, str] = found["fields"]
    return {**fields, **chosen}


def test_every_admin_page_answers_and_shows_the_program(console: Console) -> None:
    api, admin = console.api, console.admin
    program = _program(api, console.server)
    for path in MENU:
        answer = admin.get(path)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text[:300]}"
        assert "<h1>" in answer.text, path
    home = admin.get("/ui/").text
    assert "Running shoes" in home and "pending conversion" in home  # a top offer; the review waiting
    offer_page = admin.get(f"/ui/offers/{program['offer']['id']}").text
    assert f"/r/{program['offer']['id']}/{program['partner']['id']}" in offer_page  # the tracking link
    assert f"secure={program['advertiser']['postback_token']}" in offer_page  # the postback URL
    advertiser_page = admin.get(f"/ui/advertisers/{program['advertiser']['id']}").text
    assert program["advertiser"]["postback_token"] in advertiser_page and "/pixel?offer_id=" in advertiser_page
    listed = admin.get("/ui/conversions", params={"offer_id": program["offer"]["id"]}).text
    assert "$12.34" in listed and "$5.67" in listed and "$80.00" in listed
    detail = admin.get(f"/ui/conversions/{program['conversions'][0]}").text
    assert "Attribution window" in detail and "Postback token" in detail  # the trace, step by step
    found = admin.get("/ui/offers", params={"q": "RUNNING", "advertiser_id": program["advertiser"]["id"]}).text
    assert "Running shoes" in found and "Held offer" not in found
    assert admin.get("/ui/conversions", params={"status": "nonsense"}).status_code == 400
    assert admin.get("/ui/offers/999999").status_code == 404


def test_reports_page_and_its_downloads_show_the_same_rows(console: Console) -> None:
    api, admin = console.api, console.admin
    program = _program(api, console.server)
    query = {"group_by": ["offer", "day"], "advertiser_id": program["advertiser"]["id"]}
    report = admin.get("/ui/reports", params=query)
    assert report.status_code == 200
    assert "Running shoes (#" in report.text and "$12.34" in report.text and 'data-chart="report-chart"' in report.text
    assert "in UTC" in report.text
    download = admin.get("/ui/reports.csv", params=query)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {str(program["offer"]["id"]), str(program["held"]["id"])} == {r["offer"] for r in rows}
    assert next(r for r in rows if r["offer"] == str(program["offer"]["id"]))["revenue"] == "12.34"
    as_json = admin.get("/ui/reports.json", params=query).json()
    assert len(as_json["rows"]) == len(rows)
    colour = admin.get("/ui/reports", params={"group_by": "colour"})
    assert colour.status_code == 400 and "group_by" in colour.text
    assert admin.get("/ui/reports", params={"tz": "Mars/Olympus"}).status_code == 400
    nepal = admin.get("/ui/reports", params={**query, "tz": "Asia/Kathmandu", "country": "zz", "status": "approved"})
    assert nepal.status_code == 200 and "in Asia/Kathmandu" in nepal.text and "No clicks or conversions" in nepal.text
    assert admin.get("/ui/reports", params={"status": "lost"}).status_code == 400
    with httpx.Client(base_url=console.server.base_url) as anonymous:
        assert anonymous.get("/ui/reports.csv").status_code == 303  # to the sign-in page, never the rows


def test_offer_forms_create_and_change_everything_an_offer_has(console: Console) -> None:
    api, admin = console.api, console.admin
    adv = factories.advertiser(api)
    fields = _form(admin.get("/ui/offers/new").text, "/ui/offers/new")
    fields.update({"name": "Trial app", "advertiser_id": str(adv["id"]), "currency": "eur",
                   "destination_url": "https://app.example/?tid={transaction_id}&s={sub2}",
                   "fallback_url": "https://app.example/sorry", "visibility": "approval_required",
                   "attribution_window_days": "14", "revenue_type": "cpa_cps", "revenue_amount": "2.00",
                   "revenue_percent": "10", "payout_type": "cpa", "payout_amount": "1.50",
                   "cap_limit_0": "100", "cap_metric_0": "clicks", "cap_period_0": "day",
                   "share_amount_with_partners": "on", "conversion_methods": ["postback", "pixel"]})  # fmt: skip
    created = admin.post("/ui/offers/new", data=fields)
    assert created.status_code == 200 and "Trial app" in created.text, created.text.split('role="alert">')[-1][:300]
    offer_id = int(str(created.url).rstrip("/").split("/")[-1])
    offer = api.get(f"/api/v1/offers/{offer_id}").json()
    assert offer["currency"] == "EUR" and offer["visibility"] == "approval_required"
    assert offer["revenue"] == {"type": "cpa_cps", "amount": "2.00", "percent": "10"}
    assert offer["caps"][0]["metric"] == "clicks" and offer["caps"][0]["limit"] == 100
    assert offer["conversion_methods"] == ["postback", "pixel"] and offer["share_amount_with_partners"] is True

    refused = admin.post("/ui/offers/new", data={**fields, "revenue_amount": "lots"})
    assert refused.status_code == 400 and "revenue.amount" in refused.text and 'value="Trial app"' in refused.text
    no_method = admin.post("/ui/offers/new", data={k: v for k, v in fields.items() if k != "conversion_methods"})
    assert no_method.status_code == 400 and "conversion_methods" in no_method.text

    page = admin.get(f"/ui/offers/{offer_id}").text
    edit = _form(page, f"/ui/offers/{offer_id}")
    edit.update({"name": "Trial app v2", "cap_limit_0": "", "conversion_methods": ["postback"]})  # no limit: no cap
    saved = admin.post(f"/ui/offers/{offer_id}", data=edit)
    assert saved.status_code == 200 and "Offer saved." in saved.text
    offer = api.get(f"/api/v1/offers/{offer_id}").json()
    assert (
        offer["name"] == "Trial app v2" and offer["caps"] == [] and offer["fallback_url"] == "https://app.example/sorry"
    )

    event = _form(page, f"/ui/offers/{offer_id}/events")
    event.update(
        {"name": "purchase", "revenue_amount": "9.00", "payout_amount": "3.00", "allow_multiple_per_click": "on"}
    )
    assert "Event purchase added." in admin.post(f"/ui/offers/{offer_id}/events", data=event).text
    (added,) = api.get(f"/api/v1/offers/{offer_id}/events").json()["data"]
    assert added["allow_multiple_per_click"] is True and added["payout"]["amount"] == "3.00"
    again = admin.post(f"/ui/offers/{offer_id}/events", data=event)
    assert again.status_code == 400 and "already has an event named" in again.text
    changed = admin.post(f"/ui/offers/{offer_id}/events/{added['id']}", data={**event, "payout_amount": "4.00"})
    assert changed.status_code == 200 and f"event_id={added['id']}" in changed.text  # its postback URL
    assert api.get(f"/api/v1/offers/{offer_id}/events").json()["data"][0]["payout"]["amount"] == "4.00"


def test_partner_queue_access_and_payouts(console: Console) -> None:
    api, admin = console.api, console.admin
    adv = factories.advertiser(api)
    private = factories.offer(api, adv["id"], name="Private deal", visibility="private")
    applicants = [api.post("/api/v1/partner-signups", json={"name": f"Applicant {n}", "email": f"a{n}@blog.example"})
                  .json() for n in (1, 2)]  # fmt: skip
    queue = admin.get("/ui/partners").text
    assert "Sign-ups waiting for review" in queue and "Applicant 1" in queue and "Applicant 2" in queue
    approve = _form(queue, f"/ui/partners/{applicants[0]['id']}/verdict")
    assert "is active" in admin.post(f"/ui/partners/{applicants[0]['id']}/verdict", data=approve).text
    csrf = csrf_of(queue)
    reject = {"csrf_token": csrf, "verdict": "rejected", "reason": "spam site"}
    assert "is rejected" in admin.post(f"/ui/partners/{applicants[1]['id']}/verdict", data=reject).text
    statuses = {p["id"]: p["status"] for p in api.get("/api/v1/partners", params={"limit": 500}).json()["data"]}
    assert statuses[applicants[0]["id"]] == "active" and statuses[applicants[1]["id"]] == "rejected"

    partner_id = applicants[0]["id"]
    page = admin.get(f"/ui/partners/{partner_id}").text
    grant = {"csrf_token": csrf, "offer_id": str(private["id"]), "status": "approved"}
    granted = admin.post(f"/ui/partners/{partner_id}/access", data=grant)
    assert granted.status_code == 200 and "Private deal" in granted.text
    (access,) = api.get("/api/v1/offer-access", params={"partner_id": partner_id}).json()["data"]
    assert access["status"] == "approved"
    admin.post(f"/ui/access/{access['id']}", data={"csrf_token": csrf, "status": "rejected", "reason": "ended"})
    assert api.get("/api/v1/offer-access", params={"partner_id": partner_id}).json()["data"][0]["status"] == "rejected"

    payout = _form(page, f"/ui/partners/{partner_id}/payouts")
    payout.update({"offer_id": str(private["id"]), "payout_type": "cpa", "payout_amount": "7.25"})
    saved = admin.post(f"/ui/partners/{partner_id}/payouts", data=payout)
    assert saved.status_code == 200 and "$7.25" in saved.text
    (special,) = api.get(f"/api/v1/offers/{private['id']}/partner-payouts").json()["data"]
    removed = admin.post(f"/ui/partners/{partner_id}/payouts/{special['id']}/delete",
                         data={"csrf_token": csrf, "offer_id": str(private["id"])})  # fmt: skip
    assert removed.status_code == 200
    assert api.get(f"/api/v1/offers/{private['id']}/partner-payouts").json()["data"] == []


def test_conversion_decisions_and_the_review_queue_with_undo(console: Console) -> None:
    api, admin = console.api, console.admin
    approved_id, pending_id = _program(api, console.server)["conversions"]
    csrf = csrf_of(admin.get(f"/ui/conversions/{approved_id}").text)
    no_reason = admin.post(f"/ui/conversions/{approved_id}/status", data={"csrf_token": csrf, "status": "rejected"})
    assert no_reason.status_code == 400 and "reason" in no_reason.text
    rejected = admin.post(f"/ui/conversions/{approved_id}/status",
                          data={"csrf_token": csrf, "status": "rejected", "reason": "duplicate order"})  # fmt: skip
    assert rejected.status_code == 200 and "duplicate order" in rejected.text  # the trace's status change
    assert api.get(f"/api/v1/conversions/{approved_id}").json()["status"] == "rejected"

    review = admin.get("/ui/review", params={"at": pending_id}).text
    assert f"#{pending_id}" in review and "data-review-approve" in review
    after = admin.post(
        f"/ui/conversions/{pending_id}/status", data=_form(review, f"/ui/conversions/{pending_id}/status")
    )
    assert str(after.url).endswith(f"/ui/review?undo={pending_id}&was=pending")
    assert api.get(f"/api/v1/conversions/{pending_id}").json()["status"] == "approved"
    back = admin.post(
        f"/ui/conversions/{pending_id}/status", data=_form(after.text, f"/ui/conversions/{pending_id}/status")
    )
    assert str(back.url).endswith(f"/ui/review?at={pending_id}") and f"#{pending_id}" in back.text
    assert api.get(f"/api/v1/conversions/{pending_id}").json()["status"] == "pending"


def test_people_webhooks_and_sources(console: Console) -> None:
    api, admin = console.api, console.admin
    adv = factories.advertiser(api)
    people = admin.get("/ui/users").text
    fields = _form(people, "/ui/users")
    fields.update({"email": "Dev@Acme.example", "name": "Dev", "role": "advertiser", "advertiser_id": str(adv["id"])})
    invited = admin.post("/ui/users", data=fields)
    assert invited.status_code == 200 and "/ui/accept?token=" in invited.text
    missing_owner = admin.post("/ui/users", data={**fields, "email": "x@acme.example", "advertiser_id": ""})
    assert missing_owner.status_code == 400 and "advertiser_id" in missing_owner.text
    listed = admin.get("/ui/users").text
    assert "dev@acme.example" in listed
    (user,) = [u for u in api.get("/api/v1/users").json()["data"] if u["email"] == "dev@acme.example"]
    again = admin.post(f"/ui/users/{user['id']}/link", data={"csrf_token": csrf_of(listed), "kind": "invitation"})
    assert "/ui/accept?token=" in again.text
    admin.post(f"/ui/users/{user['id']}/status", data={"csrf_token": csrf_of(listed), "status": "disabled"})
    assert api.get(f"/api/v1/users/{user['id']}").json()["status"] == "disabled"

    hook = _form(admin.get("/ui/webhooks").text, "/ui/webhooks")
    hook.update({"url": "https://hooks.example.com/tracklane", "description": "CRM of the console test",
                 "event_types": ["conversion.registered"]})  # fmt: skip
    issued = admin.post("/ui/webhooks", data=hook)
    assert issued.status_code == 200 and "whsec_" in issued.text
    (endpoint,) = [e for e in api.get("/api/v1/webhooks").json()["data"] if e["description"] == hook["description"]]
    assert endpoint["event_types"] == ["conversion.registered"]
    page = admin.get(f"/ui/webhooks/{endpoint['id']}").text
    rotated = admin.post(
        f"/ui/webhooks/{endpoint['id']}/rotate", data=_form(page, f"/ui/webhooks/{endpoint['id']}/rotate")
    )
    assert "whsec_" in rotated.text and "New signing secret" in rotated.text
    paused = admin.post(f"/ui/webhooks/{endpoint['id']}", data={"csrf_token": csrf_of(page), "status": "disabled"})
    assert paused.status_code == 200 and api.get(f"/api/v1/webhooks/{endpoint['id']}").json()["status"] == "disabled"
    bad = admin.post("/ui/webhooks", data={**hook, "url": "ftp://nowhere"})
    assert bad.status_code == 400 and "url" in bad.text

    source = _form(admin.get("/ui/sources").text, "/ui/sources")
    source.update({"name": "Console web shop", "advertiser_id": str(adv["id"]), "preset": "everflow"})
    created = admin.post("/ui/sources", data=source)
    assert created.status_code == 200 and "Message log" in created.text
    (made,) = [s for s in api.get("/api/v1/sources").json()["data"] if s["name"] == "Console web shop"]
    assert made["write_key"] in created.text and made["preset"] == "everflow"


def test_forms_need_their_csrf_token_and_other_roles_find_no_admin_page(console: Console) -> None:
    api, admin, server = console.api, console.admin, console.server
    program = _program(api, server)
    posts = {
        "/ui/offers/new": {"name": "x"},
        f"/ui/conversions/{program['conversions'][0]}/status": {"status": "rejected", "reason": "x"},
        f"/ui/partners/{program['partner']['id']}/verdict": {"verdict": "rejected"},
        "/ui/users": {"email": "a@b.example", "role": "admin"},
        "/ui/webhooks": {"url": "https://hooks.example.com/"},
        "/ui/advertisers": {"name": "Nope"},
    }
    for path, data in posts.items():
        answer = admin.post(path, data=data)
        assert answer.status_code == 403, f"{path} answered {answer.status_code} without its CSRF token"
    assert api.get(f"/api/v1/conversions/{program['conversions'][0]}").json()["status"] == "approved"
    with signed_in(server, person(server, Role.PARTNER, program["partner"]["id"])) as partner:
        for path in ("/ui/offers", "/ui/reports", "/ui/reports.csv", f"/ui/conversions/{program['conversions'][0]}"):
            assert partner.get(path).status_code == 404, path
