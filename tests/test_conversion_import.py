"""Importing offline conversions from a CSV file through a real server, on SQLite and PostgreSQL: the good
rows are recorded with exact money like API conversions, the bad ones reported with their line and field;
a dry run writes nothing at all (no conversion, no outbox message, no cap counted) and answers what the
import then does, across the chunks it is written in; an advertiser imports only its own clicks; a file
that cannot be read is refused whole; `tracklane conversions import` runs the same import."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import BROWSER_UA
from tests.servers import RunningServer, running_server
from tests.test_delivery_cli import tracklane
from tracklane.services import conversion_import

#: 2.00 + 10 % of the sale for the network, 5 % of the sale for the partner; an order id per conversion.
SALE_PRICED = {"revenue": {"type": "cpa_cps", "amount": "2.00", "percent": "10"},
               "payout": {"type": "cps", "percent": "5"}, "allow_multiple_conversions": True}  # fmt: skip
IMPORT = "/api/v1/conversions/import"
CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def hub(database_url: str) -> Iterator[RunningServer]:
    """A server that keeps its outbox: deliveries stay pending, so the test sees every message written."""
    with running_server(database_url, delivery_in_serve=False) as running:
        yield running


@pytest.fixture
def admin(hub: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as client:
        yield client


@pytest.fixture
def visitor(hub: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER_UA}) as client:
        yield client


@pytest.fixture
def program(admin: httpx.Client, visitor: httpx.Client) -> dict[str, Any]:
    """A sale-priced offer with an event `upsell`, three clicks on it, and a webhook on conversions."""
    admin.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/t", "event_types": ["conversion.registered",
                                         "event.registered"]})  # fmt: skip
    adv, offer, partner = factories.program(admin, **SALE_PRICED)
    factories.event(admin, offer["id"], name="upsell")
    clicks = [factories.click(visitor, offer["id"], partner["id"]) for _ in range(3)]
    return {"advertiser": adv, "offer": offer, "partner": partner, "clicks": clicks}


def mixed_file(t1: str, t2: str, t3: str) -> bytes:
    """Good and bad rows; row 6's adv1 spans two lines, so the rows after it start a line later."""
    return (
        "\ufeffTransaction_ID,Event_Name,amount,order_id,ADV1\r\n"
        f'{t1},,120.00,A1,"north, side"\r\n'  # line 2: accepted
        f"{t1},upsell,,,\r\n"  # 3: the event, after its conversion
        f"{'0' * 32},,10.00,B1,\r\n"  # 4: no such click
        f"{t2},,ten,B2,\r\n"  # 5: not an amount
        f'{t2},,5.00,B0,"two\nlines"\r\n'  # 6 (to 7): a control character in adv1
        "\r\n"  # 8: blank, skipped
        f"{t2},nosuch,,,\r\n"  # 9: no such event
        f"{t3},upsell,,,\r\n"  # 10: an event before any conversion of its click
        f"{t1},,120.00,A1,\r\n"  # 11: the same order again
        f"{t2},,50.00,B3,\r\n"  # 12: accepted
    ).encode()


EXPECTED_ERRORS = [
    (4, "unknown_transaction", None),
    (5, "invalid_parameter", "amount"),
    (6, "invalid_parameter", "adv1"),
    (9, "unknown_event", None),
    (10, "no_prior_conversion", None),
]


def imported(client: httpx.Client, body: bytes, dry_run: bool = False) -> dict[str, Any]:
    response = client.post(IMPORT, params={"dry_run": str(dry_run).lower()}, content=body, headers=CSV)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def stored(admin: httpx.Client) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = admin.get("/api/v1/conversions", params={"limit": 200}).json()["data"]
    return data


def outbox(admin: httpx.Client) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = admin.get("/api/v1/deliveries", params={"limit": 200}).json()["data"]
    return data


def outcome(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what only a real import has (the ids of what it recorded)."""
    return {**{k: v for k, v in answer.items() if k != "dry_run"},
            "conversions": [{**c, "conversion_id": None} for c in answer["conversions"]]}  # fmt: skip


def test_good_rows_are_recorded_with_exact_money_and_bad_rows_reported_by_line_and_field(
    admin: httpx.Client, program: dict[str, Any]
) -> None:
    t1, t2, t3 = program["clicks"]
    answer = imported(admin, mixed_file(t1, t2, t3))

    assert {k: answer[k] for k in ("dry_run", "rows", "accepted", "duplicates", "rejected")} == {
        "dry_run": False, "rows": 9, "accepted": 3, "duplicates": 1, "rejected": 5}  # fmt: skip
    assert [(c["row"], c["result"], c["status"]) for c in answer["conversions"]] == [
        (2, "accepted", "approved"), (3, "accepted", "approved"), (11, "duplicate", "approved"),
        (12, "accepted", "approved")]  # fmt: skip
    assert answer["conversions"][2]["conversion_id"] == answer["conversions"][0]["conversion_id"]
    assert [(e["row"], e["error"], e.get("field")) for e in answer["errors"]] == EXPECTED_ERRORS
    errors = {e["row"]: e for e in answer["errors"]}
    assert errors[5]["transaction_id"] == t2 and errors[5]["message"].startswith("amount:")
    assert "field" not in errors[4], "a field is named only when one is at fault"

    rows = {c["id"]: c for c in stored(admin)}
    assert len(rows) == 3, "nothing but the accepted rows was written"
    base = rows[answer["conversions"][0]["conversion_id"]]
    assert (base["transaction_id"], base["amount"], base["revenue"], base["payout"], base["order_id"]) == (
        t1, "120.00", "14.00", "6.00", "A1")  # fmt: skip
    assert (base["origin"], base["adv1"], base["event_id"]) == ("api", "north, side", None)
    assert ("api_key", "valid", "an API key of the admin") in [(s["step"], s["outcome"], s["detail"])
                                                               for s in base["trace"]]  # fmt: skip
    event = rows[answer["conversions"][1]["conversion_id"]]
    assert (event["transaction_id"], event["event_name"], event["revenue"], event["payout"]) == (
        t1, "upsell", "3.00", "1.00")  # fmt: skip
    other = rows[answer["conversions"][3]["conversion_id"]]
    assert (other["transaction_id"], other["amount"], other["revenue"], other["payout"]) == (
        t2, "50.00", "7.00", "2.50")  # fmt: skip

    again = imported(admin, mixed_file(t1, t2, t3))
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 4, 5), "importing again is safe"
    assert len(stored(admin)) == 3


def test_a_dry_run_writes_nothing_and_answers_what_the_import_then_does(
    admin: httpx.Client, visitor: httpx.Client, program: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conversion_import, "CHUNK_ROWS", 2)  # rows see rows of earlier chunks
    capped = factories.offer(admin, program["advertiser"]["id"],
                             caps=[{"metric": "conversions", "period": "total", "limit": 1}])  # fmt: skip
    c1, c2 = (factories.click(visitor, capped["id"], program["partner"]["id"]) for _ in range(2))
    t1, t2, t3 = program["clicks"]
    body = mixed_file(t1, t2, t3) + f"{c1},,,C1,\r\n{c2},,,C2,\r\n".encode()  # lines 13 and 14
    before_conversions, before_outbox = stored(admin), outbox(admin)

    rehearsed = imported(admin, body, dry_run=True)
    assert rehearsed["dry_run"] is True
    assert all(c["conversion_id"] is None for c in rehearsed["conversions"])
    assert stored(admin) == before_conversions and outbox(admin) == before_outbox, "a dry run writes nothing"

    done = imported(admin, body)
    assert outcome(rehearsed) == outcome(done), "the dry run answered what the import did"
    assert [(c["row"], c["status"]) for c in done["conversions"][-2:]] == [(13, "approved"), (14, "pending")]
    pending = next(c for c in stored(admin) if c["transaction_id"] == c2)
    assert pending["status_reason"] == "over_cap", "the cap was still free at the dry run: it counted nothing"
    assert len(outbox(admin)) == len(before_outbox) + 5, "the import's five conversions and events are sent"

    after = imported(admin, body, dry_run=True)
    assert (after["accepted"], after["duplicates"]) == (0, 6)


def test_an_advertiser_imports_only_its_own_clicks(admin: httpx.Client, visitor: httpx.Client,
                                                   program: dict[str, Any]) -> None:  # fmt: skip
    _, other_offer, partner = factories.program(admin)
    theirs = factories.click(visitor, other_offer["id"], partner["id"])
    mine = program["clicks"][0]
    owner = {"role": "advertiser", "advertiser_id": program["advertiser"]["id"]}
    key = factories.created(admin.post("/api/v1/api-keys", json=owner))
    body = f"transaction_id,amount\n{theirs},10.00\n{mine},10.00\n{'f' * 32},10.00\n".encode()
    with httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {key['key']}"}) as client:
        answer = imported(client, body)
    assert [(c["row"], c["result"]) for c in answer["conversions"]] == [(3, "accepted")]
    refused = {e["row"]: e for e in answer["errors"]}
    assert [(row, e["error"]) for row, e in refused.items()] == [(2, "unknown_transaction"), (4, "unknown_transaction")]
    assert refused[2]["message"] == f"no click has transaction_id {theirs}", "answered as a click that does not exist"
    theirs_stored = admin.get("/api/v1/conversions", params={"transaction_id": theirs}).json()["data"]
    assert theirs_stored == []
    (own,) = admin.get("/api/v1/conversions", params={"transaction_id": mine}).json()["data"]
    assert ("api_key", f"an API key of advertiser #{program['advertiser']['id']}") in [
        (s["step"], s["detail"]) for s in own["trace"]]  # fmt: skip


def test_a_partner_key_is_refused_and_no_key_is_unauthorized(admin: httpx.Client, program: dict[str, Any]) -> None:
    key = factories.created(admin.post("/api/v1/api-keys", json={"role": "partner",
                                                                 "partner_id": program["partner"]["id"]}))  # fmt: skip
    body = f"transaction_id\n{program['clicks'][0]}\n".encode()
    partner = httpx.post(str(admin.base_url) + IMPORT, content=body, headers={**CSV, "Authorization": f"Bearer "
                                                                              f"{key['key']}"})  # fmt: skip
    assert (partner.status_code, partner.json()["error"]) == (403, "forbidden")
    anonymous = httpx.post(str(admin.base_url) + IMPORT, content=body, headers=CSV)
    assert anonymous.status_code == 401
    assert stored(admin) == []


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (b"transaction_id,amount,coupon\nabc,1.00,X\n", "coupon", "is not a column"),
        (b"amount,order_id\n1.00,A1\n", "transaction_id", "no transaction_id column"),
        (b"", "file", "header row"),
        (b"\n\n", "file", "header row"),
        (b"transaction_id,Amount,amount\nabc,1,2\n", "amount", "twice"),
        ("transaction_id\nabc\n".encode("utf-16"), "file", "UTF-8"),
        (b'transaction_id,amount\n"abc,1.00\n', "file", "not valid CSV"),
        (b"transaction_id\n" + b"abc\n" * 10_001, "file", "more than 10000 data rows"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole_naming_the_problem(
    admin: httpx.Client, program: dict[str, Any], body: bytes, field: str, words: str
) -> None:
    good = f"{program['clicks'][0]},1.00\n".encode()
    body = body.replace(b"abc", program["clicks"][0].encode()) if b"abc" in body else body
    response = admin.post(IMPORT, content=body + (good if body.startswith(b"transaction_id,amount") else b""),
                          headers=CSV)  # fmt: skip
    assert response.status_code == 400, response.text
    answer = response.json()
    assert (answer["error"], answer["field"]) == ("invalid_parameter", field)
    assert words in answer["message"]
    assert stored(admin) == [], "a refused file writes nothing, not even its good rows"


def test_an_oversize_file_and_a_body_that_is_not_csv_are_refused(admin: httpx.Client,
                                                                 program: dict[str, Any]) -> None:  # fmt: skip
    tid = program["clicks"][0]
    row = f"{tid},1.00,{'x' * 200}\n".encode()
    oversize = b"transaction_id,amount,adv1\n" + row * (5 * 1024 * 1024 // len(row) + 1)
    assert len(oversize) > 5 * 1024 * 1024
    response = admin.post(IMPORT, content=oversize, headers=CSV)
    assert (response.status_code, response.json()["field"]) == (400, "file"), response.text[:300]
    assert "5 MB" in response.json()["message"]
    as_json = admin.post(IMPORT, json={"transaction_id": tid})
    assert (as_json.status_code, as_json.json()["field"]) == (400, "content-type")
    assert stored(admin) == []


def test_a_multipart_upload_with_a_file_field_is_imported(admin: httpx.Client, program: dict[str, Any]) -> None:
    tid = program["clicks"][0]
    files = {"file": ("sales.csv", f"transaction_id,amount,order_id\n{tid},30.00,M1\n".encode(), "text/csv")}
    response = admin.post(IMPORT, files=files)
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], stored(admin)[0]["amount"]) == (1, "30.00")
    no_file = admin.post(IMPORT, data={"other": "x"}, files={"upload": ("a.csv", b"transaction_id\n", "text/csv")})
    assert (no_file.status_code, no_file.json()["field"]) == (400, "file")


def test_the_cli_imports_a_file_on_the_database(
    hub: RunningServer, admin: httpx.Client, program: dict[str, Any], tmp_path: Path
) -> None:
    t1, t2, t3 = program["clicks"]
    path = tmp_path / "sales.csv"
    path.write_bytes(mixed_file(t1, t2, t3))
    url = hub.settings.database_url

    rehearsed = tracklane(url, "conversions", "import", str(path), "--dry-run")
    assert rehearsed.returncode == 1, rehearsed.stderr
    lines = rehearsed.stdout.splitlines()
    assert lines[0] == ("9 rows: would record 3, 1 duplicates (recorded before), 5 refused "
                        "(dry run: nothing was written)")  # fmt: skip
    assert lines[2] == f"row 5 ({t2}): invalid_parameter [amount]: amount: must be a decimal number: ASCII digits " \
        "with at most one '.' (e.g. 12.50)"  # fmt: skip
    assert [line.split(" ")[1] for line in lines[1:]] == ["4", "5", "6", "9", "10"]
    assert stored(admin) == []

    done = tracklane(url, "conversions", "import", str(path), "--json")
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["accepted"], answer["rejected"]) == (3, 5)
    assert sorted(c["amount"] or "-" for c in stored(admin)) == ["-", "120.00", "50.00"]

    good = tmp_path / "good.csv"
    good.write_text(f"transaction_id,amount,order_id\n{t3},10.00,G1\n")
    clean = tracklane(url, "conversions", "import", str(good))
    assert (clean.returncode, clean.stdout.strip()) == (0, "1 rows: recorded 1, 0 duplicates (recorded before), "
                                                           "0 refused")  # fmt: skip
    unreadable = tracklane(url, "conversions", "import", str(tmp_path / "missing.csv"))
    assert unreadable.returncode == 2
