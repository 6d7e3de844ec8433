"""SIGKILL under mixed load: what a server acknowledged survives its crash, once, with its outbox.

The server runs as its own process (`python -m tracklane serve`, settings from the environment). Clients
send clicks, postbacks and Segment batches, and record every answer that acknowledged something; the server
is SIGKILLed in the middle of that load a few times and started again on the same database. The clients
retry what was not acknowledged with the same identity (the postback's click, the batch's messageIds), as
real clients do. Afterwards every acknowledged click, conversion and message is stored exactly once, and
every conversion has its webhook and partner postback deliveries (written in its own transaction).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests import factories
from tests.segment_support import source
from tests.servers import POSTGRES_ENV, postgres_database, sqlite_url

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
KILLS = 3
SEED = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """`tracklane serve` as a child process in its own process group, started again on the same port."""

    def __init__(self, database_url: str, log: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "tlk_crash_" + secrets.token_urlsafe(24)
        self.env = {
            **os.environ,
            "TRACKLANE_DATABASE_URL": database_url,
            "TRACKLANE_ADMIN_KEY": self.admin_key,
            "TRACKLANE_PORT": str(self.port),
            "TRACKLANE_LOG_LEVEL": "WARNING",
            "TRACKLANE_DELIVERY_IN_SERVE": "false",  # the deliveries stay as written, to be counted
            "TRACKLANE_DUPLICATE_CLICK_WINDOW_SECONDS": "0",  # its clients repeat clicks from one address
            "TRACKLANE_SECRETS_KEY": "crash-test-only-secrets-key-0123456789abcdef",
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tracklane", "serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Program:
    offer_id: int
    partner_id: int
    token: str
    write_key: str
    source_id: int
    partner_postback_id: int


@dataclass
class Ledger:
    """What the server acknowledged, and what the clients still have to send (again)."""

    clicks: set[str] = field(default_factory=set)
    conversions: dict[str, int] = field(default_factory=dict)  # transaction id -> conversion id
    messages: set[str] = field(default_factory=set)
    segment_orders: set[str] = field(default_factory=set)  # transaction ids of acknowledged Order Completed
    to_postback: deque[str] = field(default_factory=deque)
    to_segment: deque[str] = field(default_factory=deque)
    batches: deque[list[dict[str, Any]]] = field(default_factory=deque)
    failures: int = 0  # requests that got no answer (the server was down)
    statuses: Counter[int] = field(default_factory=Counter)


def _set_up(server: ServerProcess) -> Program:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
        adv, offer, partner = factories.program(api)
        factories.created(api.post("/api/v1/webhooks", json={"url": "https://hooks.example/tracklane"}))
        postback = factories.created(
            api.post(
                "/api/v1/partner-postbacks",
                json={"partner_id": partner["id"], "url": "https://partner.example/pb?tid={transaction_id}"},
            )
        )
        src = source(api, adv["id"])
    return Program(offer["id"], partner["id"], adv["postback_token"], src["write_key"], src["id"], postback["id"])


async def _click(client: httpx.AsyncClient, program: Program, ledger: Ledger, n: int) -> None:
    cookie = f"tl_{program.offer_id}="
    try:
        response = await client.get(f"/r/{program.offer_id}/{program.partner_id}", params={"sub1": f"s{n}"})
    except httpx.TransportError:
        ledger.failures += 1
        await asyncio.sleep(0.05)
        return
    ledger.statuses[response.status_code] += 1
    set_cookie = response.headers.get("set-cookie", "")
    if response.status_code == 302 and set_cookie.startswith(cookie):
        tid = set_cookie[len(cookie) :].split(";")[0]
        ledger.clicks.add(tid)
        (ledger.to_postback if n % 3 else ledger.to_segment).append(tid)


async def _postback(client: httpx.AsyncClient, program: Program, ledger: Ledger) -> None:
    tid = ledger.to_postback.popleft()
    try:
        response = await client.get("/postback", params={"transaction_id": tid, "secure": program.token})
    except httpx.TransportError:
        ledger.failures += 1
        ledger.to_postback.append(tid)
        await asyncio.sleep(0.05)
        return
    ledger.statuses[response.status_code] += 1
    body = response.json() if response.status_code == 200 else {}
    if body.get("result") in ("accepted", "duplicate"):
        assert ledger.conversions.setdefault(tid, body["conversion_id"]) == body["conversion_id"], "a second one"
    else:
        ledger.to_postback.append(tid)


async def _segment(client: httpx.AsyncClient, program: Program, ledger: Ledger, serial: Iterator[int]) -> None:
    if ledger.batches:
        batch = ledger.batches.popleft()  # a retry: the same messages, with the same messageIds
    else:
        orders = [ledger.to_segment.popleft() for _ in range(min(3, len(ledger.to_segment)))]
        batch = [
            {"type": "track", "event": "Order Completed", "userId": f"u-{tid}", "messageId": f"order-{tid}",
             "properties": {"transaction_id": tid, "order_id": f"o-{tid}", "total": "20"}}
            for tid in orders
        ] + [
            {"type": "track", "event": "Viewed", "userId": "viewer", "messageId": f"view-{next(serial)}"}
            for _ in range(5)
        ]  # fmt: skip
    try:
        response = await client.post("/v1/batch", json={"batch": batch, "writeKey": program.write_key})
    except httpx.TransportError:
        ledger.failures += 1
        ledger.batches.append(batch)
        await asyncio.sleep(0.05)
        return
    ledger.statuses[response.status_code] += 1
    if response.status_code == 200:
        ledger.messages.update(m["messageId"] for m in batch)
        ledger.segment_orders.update(m["properties"]["transaction_id"] for m in batch if m["event"] != "Viewed")
    else:
        ledger.batches.append(batch)


async def _load(server: ServerProcess, program: Program, ledger: Ledger) -> None:
    """Mixed load from a few clients while the server is killed and started again KILLS times."""
    stop = asyncio.Event()
    serial = itertools.count()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"User-Agent": BROWSER}, timeout=10, limits=limits
    ) as client:

        async def clicking() -> None:
            while not stop.is_set():
                await _click(client, program, ledger, next(serial))

        async def converting() -> None:
            while not stop.is_set():
                if ledger.to_postback:
                    await _postback(client, program, ledger)
                else:
                    await asyncio.sleep(0.01)

        async def sending() -> None:
            while not stop.is_set():
                if ledger.batches or ledger.to_segment:
                    await _segment(client, program, ledger, serial)
                else:
                    await asyncio.sleep(0.01)

        clients = [
            *(asyncio.create_task(clicking()) for _ in range(8)),
            *(asyncio.create_task(converting()) for _ in range(4)),
            *(asyncio.create_task(sending()) for _ in range(3)),
        ]
        await _kill_and_restart(server, ledger)
        stop.set()
        await asyncio.gather(*clients)
        await _send_the_rest(client, program, ledger, serial)


async def _send_the_rest(client: httpx.AsyncClient, program: Program, ledger: Ledger, serial: Iterator[int]) -> None:
    """What was never acknowledged is sent again until it is (a bounded number of times)."""
    for _ in range(200):
        if not (ledger.to_postback or ledger.batches or ledger.to_segment):
            return
        if ledger.to_postback:
            await _postback(client, program, ledger)
        if ledger.batches or ledger.to_segment:
            await _segment(client, program, ledger, serial)


async def _kill_and_restart(server: ServerProcess, ledger: Ledger) -> None:
    """SIGKILL the server KILLS times at random moments of the load, starting it again each time."""
    pace = random.Random(SEED)
    for _ in range(KILLS):
        await asyncio.sleep(pace.uniform(0.8, 1.4))
        failures = ledger.failures
        server.kill()
        await asyncio.to_thread(server.start)
        assert ledger.failures > failures, "the kill did not interrupt any request"
    await asyncio.sleep(0.8)


def _check(database_url: str, program: Program, ledger: Ledger) -> None:
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            clicks = Counter(conn.scalars(text("SELECT transaction_id FROM clicks")))
            conversions = list(conn.execute(text("SELECT id, transaction_id, origin, status FROM conversions")))
            messages = Counter(
                conn.scalars(
                    text("SELECT message_id FROM segment_messages WHERE source_id = :s"), {"s": program.source_id}
                )
            )
            deliveries = list(conn.execute(text("SELECT kind, event_type, body, dedup_key FROM deliveries")))
    finally:
        engine.dispose()

    assert ledger.clicks and ledger.conversions and ledger.segment_orders and ledger.messages
    assert {tid for tid in ledger.clicks if clicks[tid] != 1} == set(), "acknowledged clicks lost or doubled"
    per_click = Counter(tid for _, tid, _, _ in conversions)
    assert [tid for tid, n in per_click.items() if n > 1] == [], "a click converted twice"
    ids = {tid: cid for cid, tid, _, _ in conversions}
    assert {tid: cid for tid, cid in ledger.conversions.items() if ids.get(tid) != cid} == {}, "postbacks lost"
    assert {tid for tid in ledger.segment_orders if tid not in ids} == set(), "Segment conversions lost"
    assert {m for m in ledger.messages if messages[m] != 1} == set(), "acknowledged messages lost or doubled"

    webhooks = Counter(json.loads(body)["data"]["id"] for kind, event, body, _ in deliveries if kind == "webhook")
    postbacks = Counter(key for kind, _, _, key in deliveries if kind == "postback")
    assert {cid for cid, *_ in conversions if webhooks[cid] != 1} == set(), "webhook deliveries missing"
    approved = [cid for cid, _, _, status in conversions if status == "approved"]
    assert approved, "no approved conversion: the partner postback part checks nothing"
    keys = {f"postback:{program.partner_postback_id}:conversion:{cid}" for cid in approved}
    assert {key for key in keys if postbacks[key] != 1} == set(), "partner postback deliveries missing"
    assert not (ledger.to_postback or ledger.batches or ledger.to_segment), "some writes never succeeded"
    assert set(ledger.statuses) <= {200, 302, 429, 503}, ledger.statuses
    print(
        f"{len(ledger.clicks)} clicks, {len(ledger.conversions)} postback and {len(ledger.segment_orders)} Segment "
        f"conversions, {len(ledger.messages)} messages acknowledged; {ledger.failures} requests cut by "
        f"{KILLS} kills; {len(conversions)} conversions, {len(deliveries)} deliveries stored"
    )


def _crash_under_load(database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(database_url, tmp_path / "server.log")
    server.start()
    try:
        program = _set_up(server)
        ledger = Ledger()
        asyncio.run(_load(server, program, ledger))
    finally:
        server.stop()
    _check(database_url, program, ledger)


def test_sigkill_under_mixed_load_loses_and_doubles_nothing_on_sqlite(tmp_path: Path) -> None:
    _crash_under_load(sqlite_url(tmp_path), tmp_path)


@pytest.mark.postgres
def test_sigkill_under_mixed_load_loses_and_doubles_nothing_on_postgres(tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        _crash_under_load(url, tmp_path)
