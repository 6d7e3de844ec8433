"""@segment/analytics-node 2.x (body writeKey only) and 3.x (Basic auth and body writeKey), run by node
against a real Tracklane server on loopback: every message stored once, no client error, one request each."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import RequestLog, conversions, customers, messages, source
from tests.servers import RunningServer

CLIENTS = Path(__file__).parent / "clients"


def run_node(clients: Path, package: str, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "send.mjs", package, json.dumps(spec)],
        cwd=clients,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("package", ["analytics-node-2", "analytics-node-3"])
def test_analytics_node(node_clients: Path, watched: tuple[RunningServer, RequestLog], package: str) -> None:
    server, log = watched
    with httpx.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=30,
        follow_redirects=False,
    ) as admin:
        adv, offer, partner = factories.program(admin)
        tid = factories.click(admin, offer["id"], partner["id"])
        src = source(admin, adv["id"])
        calls = [
            {
                "method": "page",
                "args": {
                    "anonymousId": "anon-n",
                    "name": "Landing",
                    "context": {"page": {"url": f"https://shop.example/?tl_tid={tid}"}},
                },
            },
            {
                "method": "identify",
                "args": {"userId": "user-n", "anonymousId": "anon-n", "traits": {"email": "n@example.com"}},
            },
            {"method": "group", "args": {"userId": "user-n", "groupId": "acme", "traits": {"plan": "team"}}},
            {
                "method": "track",
                "args": {
                    "userId": "user-n",
                    "event": "Order Completed",
                    "properties": {"order_id": "N-1", "revenue": 22.5, "currency": "USD"},
                },
            },
            {"method": "screen", "args": {"userId": "user-n", "name": "Home"}},
            {"method": "alias", "args": {"userId": "user-n2", "previousId": "user-n"}},
        ]
        result = run_node(
            node_clients, package, {"host": server.base_url, "writeKey": src["write_key"], "calls": calls}
        )
        assert result == {"errors": [], "requests": 1}
        assert log.posts() == [("POST", "/v1/batch", 200)]
        stored = messages(admin, src["id"])
        assert sorted(m["type"] for m in stored) == ["alias", "group", "identify", "page", "screen", "track"]
        assert all(m["message_id"].startswith("node-next-") for m in stored)
        [conversion] = conversions(admin, transaction_id=tid)
        assert (conversion["amount"], conversion["order_id"], conversion["origin"]) == ("22.50", "N-1", "segment")
        [person] = customers(admin, source_id=src["id"])
        assert (person["user_id"], person["previous_ids"], person["group_id"]) == ("user-n2", ["user-n"], "acme")
