"""schemathesis over the whole OpenAPI document of a real server, with an admin, an advertiser and a partner
key, the examples, fuzzing and stateful phases for every role and the coverage phase with the admin key (for
every role in longer runs): not one answer may be a server error (5xx), and every request is answered within
the request timeout. Then the grammar of ids and numbers in paths, queries and bodies, case by case.

The published CLI runs against `/api/openapi.json` of a server on loopback (SQLite, and PostgreSQL where
configured), seeded with one row of every kind. The examples per operation are fixed, so the run is bounded
(`FUZZ_SCALE` multiplies them: `scripts/fuzz`). Revoking API keys runs last, on its own, so that the keys
under test are not revoked half-way through the other operations. The figures of each run are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fuzzing import Program, examples, scale, seed
from tests.servers import RunningServer, running_server

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Seconds: a request not answered by then is a hang, reported as an error. Every request of a run is answered
# in well under a second on a quiet machine; the margin is for a CI machine running other test files beside
# this one, where one answer once took over 10 s.
REQUEST_TIMEOUT = 30
REVOKE = "/api/v1/api-keys/{key_id}"
ALL_PHASES = "examples,coverage,fuzzing,stateful"


@dataclass(frozen=True)
class Outcome:
    role: str
    generated: int
    failures: list[object]
    errors: list[object]
    output: str


@pytest.fixture
def fuzzed(database_url: str) -> Iterator[tuple[RunningServer, Program]]:
    """A server with no delivery worker (random webhook URLs are not worth sending to) and a seeded program."""
    with running_server(database_url, delivery_in_serve=False) as server:
        yield server, seed(server.base_url, server.admin_key)


def _config(program: Program, directory: Path) -> Path:
    """Known ids offered for the path parameters nothing in the document creates, half of the time."""
    known = {
        "transaction_id": program.transaction_ids,
        "conversion_id": program.conversion_ids,
        "customer_id": program.customer_ids or [1],
    }
    lines = ["[cache]", "enabled = false", ""]  # no crash store left behind: each run starts from its seed
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in known]
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Run:
    """One schemathesis CLI run with one key, started at once; `outcome()` waits for it and reads its report."""

    def __init__(self, program: Program, role: str, key: str, max_examples: int, phases: str, tmp_path: Path,
                 *filters: str) -> None:  # fmt: skip
        self.role = role
        self.report = tmp_path / f"{role}.json"
        command = [
            str(SCHEMATHESIS), "--config-file", str(_config(program, tmp_path)), "--no-color",
            "run", f"{program.base_url}/api/openapi.json",
            "--header", f"Authorization: Bearer {key}",
            "--checks", "not_a_server_error",
            "--phases", phases,
            "--max-examples", str(max_examples),
            "--seed", str(sum(map(ord, role)) * scale()),
            "--workers", "1",  # Python 3.11's ast is not thread-safe, and hypothesis parses source to explain
            "--request-timeout", str(REQUEST_TIMEOUT),
            "--generation-database", "none",
            "--suppress-health-check", "all",
            "--continue-on-failure",
            "--report", "json", "--report-json-path", str(self.report),
            *filters,
        ]  # fmt: skip
        self.output = tmp_path / f"{role}.log"
        with self.output.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)

    def outcome(self) -> Outcome:
        self.process.wait(timeout=3600)
        output = self.output.read_text(encoding="utf-8")
        assert self.report.exists(), output
        figures = json.loads(self.report.read_text(encoding="utf-8"))
        outcome = Outcome(
            self.role,
            int(figures["test_cases"]["generated"]),
            list(figures["failures"]),
            list(figures["errors"]),
            output,
        )
        print(f"schemathesis {self.role}: {outcome.generated} test cases, {len(outcome.failures)} failures, "
              f"{len(outcome.errors)} errors, {figures['running_time']:.1f} s")  # fmt: skip
        return outcome


def test_no_operation_answers_a_server_error_to_any_role(fuzzed: tuple[RunningServer, Program], tmp_path: Path) -> None:
    server, program = fuzzed
    # The coverage phase sends thousands of boundary values per run. In CI it runs once, with the admin key
    # on SQLite (the tenants' keys would mostly meet a 403; PostgreSQL's own faults, such as NUL, show in
    # the values the fuzzing phase sends); longer runs have every phase for every role on both databases.
    # The three roles run at once, against the same server.
    everywhere = scale() > 1
    tenant_phases = ALL_PHASES if everywhere else "examples,fuzzing,stateful"
    admin_phases = ALL_PHASES if everywhere or server.settings.database_url.startswith("sqlite") else tenant_phases
    runs = [
        Run(program, "partner", program.partner_key, examples(8), tenant_phases, tmp_path, "--exclude-path", REVOKE),
        Run(program, "advertiser", program.advertiser_key, examples(8), tenant_phases, tmp_path,
            "--exclude-path", REVOKE),
        Run(program, "admin", program.admin_key, examples(20), admin_phases, tmp_path, "--exclude-path", REVOKE),
    ]  # fmt: skip
    outcomes = [run.outcome() for run in runs]
    # The keys worked all along (else the runs tested only refusals): each still reads what its role may.
    for key in (program.partner_key, program.advertiser_key, program.admin_key):
        answer = httpx.get(f"{server.base_url}/api/v1/conversions", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
    revoking = Run(
        program, "admin-revoke", program.admin_key, examples(20), ALL_PHASES, tmp_path, "--include-path", REVOKE
    )
    outcomes.append(revoking.outcome())
    for outcome in outcomes:
        assert outcome.generated > 0, outcome.output
        assert not outcome.failures and not outcome.errors, outcome.output


# ---------------------------------------------------------------------------------------------------------
# the grammar of ids and numbers, case by case, on one server

TOO_BIG = str(2**63)
BAD_QUERIES = [
    ("/api/v1/offers/{offer}", "offer_id", {}, TOO_BIG),
    ("/api/v1/offers/{offer}", "offer_id", {}, "%D9%A1"),
    ("/api/v1/offers/{offer}", "offer_id", {}, "1_0"),
    ("/api/v1/offers/{offer}", "offer_id", {}, "+1"),
    ("/api/v1/offers/{offer}", "offer_id", {}, "9" * 5000),
    ("/api/v1/offers", "limit", {"limit": "1_0"}, None),
    ("/api/v1/offers", "limit", {"limit": "501"}, None),
    ("/api/v1/offers", "limit", {"limit": "0"}, None),
    ("/api/v1/offers", "limit", {"limit": "\u0665"}, None),
    ("/api/v1/offers", "cursor", {"cursor": "\u00b2"}, None),
    ("/api/v1/offers", "cursor", {"cursor": TOO_BIG}, None),
    ("/api/v1/offers", "cursor", {"cursor": "9" * 30}, None),
    ("/api/v1/offers", "cursor", {"cursor": "0"}, None),
    ("/api/v1/conversions", "offer_id", {"offer_id": "1_0"}, None),
    ("/api/v1/conversions", "offer_id", {"offer_id": TOO_BIG}, None),
    ("/api/v1/conversions", "partner_id", {"partner_id": "\u0661"}, None),
    ("/api/v1/offers", "from", {"from": "0001-01-01T00:00:00+01:00"}, None),
    ("/api/v1/reports", "from", {"from": "0001-01-01T00:00:00+01:00"}, None),
    ("/api/v1/reports/customers", "to", {"to": "9999-12-31T23:59:59-01:00"}, None),
]


def test_an_id_or_number_in_a_path_or_query_is_ascii_digits_below_2_63(
    fuzzed: tuple[RunningServer, Program],
) -> None:
    server, program = fuzzed
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        for path, field, params, offer in BAD_QUERIES:
            url = path.format(offer=offer if offer is not None else program.offer_id)
            answer = admin.get(url, params=params)
            assert answer.status_code == 400, (url, params, answer.text)
            assert answer.json()["field"] == field, (url, params, answer.text)
        first = admin.get("/api/v1/conversions", params={"limit": 1, "offer_id": str(program.offer_id)})
        assert first.status_code == 200 and first.json()["next_cursor"], first.text
        following = admin.get("/api/v1/conversions", params={"limit": "01", "cursor": first.json()["next_cursor"]})
        assert following.status_code == 200 and following.json()["data"], following.text
        assert admin.get(f"/api/v1/offers/{program.offer_id}").status_code == 200


def test_a_body_id_limit_or_number_past_its_bound_is_refused_naming_it(fuzzed: tuple[RunningServer, Program]) -> None:
    server, program = fuzzed
    offer = {
        "advertiser_id": program.advertiser_id,
        "name": "Bounds",
        "destination_url": "https://shop.example/?t={transaction_id}",
        "revenue": {"type": "cpa", "amount": "1.00"},
        "payout": {"type": "cpa", "amount": "0.50"},
    }
    cases: list[tuple[str, str, bytes, str]] = [
        ("POST", "/api/v1/offers", _json({**offer, "advertiser_id": 2**63}), "advertiser_id"),
        (
            "POST",
            "/api/v1/offers",
            _json({**offer, "caps": [{"metric": "clicks", "period": "day", "limit": 2**63}]}),
            "caps[0].limit",
        ),
        ("POST", "/api/v1/offers", _json(offer).replace(b'"1.00"', b"1e400"), "revenue.amount"),
        ("POST", f"/api/v1/partners/{program.partner_id}/verdict", b'{"verdict": []}', "verdict"),
        ("POST", "/api/v1/webhooks/1/rotate-secret", b'{"overlap_hours": 1e400}', "overlap_hours"),
        ("POST", "/api/v1/advertisers", b'{"name": "\\ud800"}', "body"),
        ("POST", "/api/v1/advertisers", b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", "name"),
        (
            "POST",
            "/api/v1/sources",
            f'{{"name": "Deep", "advertiser_id": {program.advertiser_id}, "settings": {{"a": '.encode()
            + b"[" * 5000
            + b"]" * 5000
            + b"}}",
            "body",
        ),
        (
            "PATCH",
            f"/api/v1/offers/{program.offer_id}",
            _json({"caps": [{"metric": "clicks", "period": "day", "limit": 2**64}]}),
            "caps[0].limit",
        ),
    ]
    headers = {"Authorization": f"Bearer {server.admin_key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.base_url, headers=headers) as admin:
        for method, path, body, field in cases:
            answer = admin.request(method, path, content=body)
            assert answer.status_code == 400, (path, body[:80], answer.text)
            assert answer.json()["field"] == field, (path, body[:80], answer.text)


def test_a_nul_in_a_body_or_a_query_string_is_refused_naming_it(fuzzed: tuple[RunningServer, Program]) -> None:
    """PostgreSQL cannot store a NUL: both databases refuse it the same way, before anything is written."""
    server, program = fuzzed
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as admin:
        body = admin.post("/api/v1/advertisers", json={"name": "a\x00b"})
        assert body.status_code == 400 and body.json()["field"] == "name", body.text
        for path, params in [
            ("/api/v1/conversions", {"transaction_id": "\x00"}),
            ("/api/v1/clicks", {"sub1": "a\x00"}),
            ("/api/v1/customers", {"user_id": "\x00"}),
            ("/api/v1/deliveries", {"event_type": "\x00"}),
            (f"/api/v1/sources/{program.source_id}/messages", {"message_id": "\x00"}),
        ]:
            answer = admin.get(path, params=params)
            assert answer.status_code == 400 and answer.json()["field"] == next(iter(params)), (path, answer.text)
        clicked = admin.get("/api/v1/clicks/a%00b")
        assert clicked.status_code in (400, 404), clicked.text


def _json(value: object) -> bytes:
    return json.dumps(value).encode()
