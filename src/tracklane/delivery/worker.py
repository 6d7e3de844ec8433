"""The outbox worker: claim due deliveries, send them concurrently, record each outcome.

Runs inside every `tracklane serve` process (started from the app's lifespan) and alone as
`tracklane worker`. Any number of workers share one database safely: a claimed delivery is leased to one
worker; if that worker dies, the lease expires and another worker claims and sends it again (same
`webhook-id`). Delivery is therefore at least once, never twice at the same time while leases hold.

The worker opens its sender (the HTTP client) for its first delivery: a process whose program has nothing
to deliver never loads the client's library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from tracklane.services.deliveries import AttemptReport, DeliveryService, OutboundMessage

log = logging.getLogger("tracklane.delivery")
RECORD_ATTEMPTS = 5


def new_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Sending(Protocol):
    """What the worker sends with (`tracklane.delivery.sender.Sender`)."""

    async def send(self, message: OutboundMessage) -> AttemptReport: ...

    async def aclose(self) -> None: ...


class DeliveryWorker:
    def __init__(
        self,
        service: DeliveryService,
        sender: Callable[[], Sending],
        concurrency: int,
        poll_seconds: float,
        worker_id: str | None = None,
        on_attempt: Callable[[OutboundMessage, AttemptReport], None] | None = None,
    ) -> None:
        self.worker_id = worker_id or new_worker_id()
        self._on_attempt = on_attempt  # told of every attempt (the metrics count them)
        self._service = service
        self._open_sender = sender
        self._sender: Sending | None = None
        self._concurrency = concurrency
        self._claim_batch = max(1, concurrency // 2)
        self._poll = poll_seconds
        self._stop = asyncio.Event()
        self._unrecorded: list[tuple[OutboundMessage, AttemptReport, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self.sent = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Deliver until `stop()`; then finish what is in flight (bounded) and close the HTTP client."""
        in_flight: set[asyncio.Task[None]] = set()
        log.info("delivery worker %s started", self.worker_id)
        try:
            while not self._stop.is_set():
                free = self._concurrency - len(in_flight)
                # claimed in batches: a claim is a write of its own, worth making for half the slots
                claimed = await self._claim(free) if free >= self._claim_batch or not in_flight else []
                in_flight.update(asyncio.create_task(self._deliver(m)) for m in claimed)
                if in_flight:
                    _, in_flight = await asyncio.wait(
                        in_flight, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
                    )
                    in_flight = set(in_flight)
                else:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self._poll)
            if in_flight:
                await asyncio.wait(in_flight)
        finally:
            for task in in_flight:
                task.cancel()
            if self._sender is not None:
                await self._sender.aclose()
            log.info("delivery worker %s stopped after %d attempts", self.worker_id, self.sent)

    async def _claim(self, limit: int) -> list[OutboundMessage]:
        try:
            return await self._service.claim(self.worker_id, limit)
        except Exception:  # the database is away: ours to retry, nothing is lost (the outbox keeps it)
            log.exception("claiming deliveries failed; retrying")
            return []

    async def _deliver(self, message: OutboundMessage) -> None:
        if self._sender is None:
            self._sender = self._open_sender()
        report = await self._sender.send(message)
        self.sent += 1
        if self._on_attempt is not None:
            self._on_attempt(message, report)
        await self._record(message, report)

    async def _record(self, message: OutboundMessage, report: AttemptReport) -> None:
        """Record the attempt with the others that finish meanwhile (one write for all of them); return once
        it is written, or given up."""
        recorded = asyncio.get_running_loop().create_future()
        self._unrecorded.append((message, report, recorded))
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_waiting())
        await recorded

    async def _record_waiting(self) -> None:
        """Write the waiting attempts, a batch at a time, until none waits."""
        try:
            while self._unrecorded:
                batch, self._unrecorded = self._unrecorded, []
                await self._write([(message, report) for message, report, _ in batch])
                for _, _, recorded in batch:
                    if not recorded.done():  # its delivery's task may have been cancelled meanwhile
                        recorded.set_result(None)
        finally:
            self._recorder = None

    async def _write(self, attempts: list[tuple[OutboundMessage, AttemptReport]]) -> None:
        try:
            await self._service.complete_all(self.worker_id, attempts)
            return
        except Exception:
            log.exception("recording %d attempts together failed; recording each alone", len(attempts))
        for message, report in attempts:
            await self._write_one(message, report)

    async def _write_one(self, message: OutboundMessage, report: AttemptReport) -> None:
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                await self._service.complete(self.worker_id, message, report)
                return
            except Exception:
                log.exception("recording delivery %s failed (try %d)", message.delivery.id, attempt)
                await asyncio.sleep(0.2 * attempt)
        # Not recorded: the lease expires and the delivery is sent again (at least once).
