"""Use cases of webhook endpoints: create (the `whsec_` secret is shown once, then stored sealed), change,
re-enable, rotate."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from tracklane.domain.destinations import AllowList, refuse_literal
from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint, parse_endpoint
from tracklane.services.ports import Clock, Database, Page, Repository, SecretBox

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class WithSecret:
    """An endpoint and its new secret, returned only when the secret is issued."""

    endpoint: WebhookEndpoint
    secret: str


class WebhookService:
    def __init__(
        self, db: Database, clock: Clock, new_secret: Callable[[], str], box: SecretBox, allow: AllowList
    ) -> None:
        self._allow = allow
        self._db = db
        self._clock = clock
        self._new_secret = new_secret
        self._box = box

    async def create(self, body: Mapping[str, Any]) -> WithSecret:
        values = parse_endpoint(body, partial=False)
        refuse_literal(values["url"], self._allow, "url")
        values.setdefault("event_types", None)
        secret, now = self._new_secret(), self._clock()
        values.update(status=EndpointStatus.ACTIVE, secret=self._box.seal(secret),
                      event_types=None if values["event_types"] is None else list(values["event_types"]))
        endpoint = await self._db.write(lambda repo: repo.insert_webhook_endpoint(values, now))
        return WithSecret(endpoint, secret)

    async def get(self, endpoint_id: int) -> WebhookEndpoint:
        return _found(await self._db.read(lambda repo: repo.get_webhook_endpoint(endpoint_id)), endpoint_id)

    async def list(self, page: Page) -> list[WebhookEndpoint]:
        return await self._db.read(lambda repo: repo.list_webhook_endpoints(page))

    async def update(self, endpoint_id: int, body: Mapping[str, Any]) -> WebhookEndpoint:
        """Change the URL, types or description; `"status": "active"` re-enables a disabled endpoint."""
        changes = parse_endpoint(body, partial=True)
        if "url" in changes:
            refuse_literal(changes["url"], self._allow, "url")
        if changes.get("event_types") is not None:
            changes["event_types"] = list(changes["event_types"])
        if "status" in body:
            try:
                status = EndpointStatus(body["status"])
            except ValueError:
                raise InvalidParameter("status", "must be active or disabled") from None
            changes["status"] = status
            if status is EndpointStatus.ACTIVE:
                changes.update(disabled_reason=None, disabled_at=None, failing_since=None)
            else:
                changes.update(disabled_reason="disabled by an administrator")
        now = self._clock()
        if changes.get("status") is EndpointStatus.DISABLED:
            changes["disabled_at"] = now

        def work(repo: Repository) -> WebhookEndpoint:
            _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)
            repo.update_webhook_endpoint(endpoint_id, changes, now)
            return _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)

        return await self._db.write(work)

    async def rotate_secret(self, endpoint_id: int, body: Mapping[str, Any]) -> WithSecret:
        """Issue a new secret; the old one keeps signing too until the overlap ends (default 24 h)."""
        overlap = _overlap(body.get("overlap_hours", DEFAULT_OVERLAP.total_seconds() / 3600))
        secret, now = self._new_secret(), self._clock()
        sealed = self._box.seal(secret)

        def work(repo: Repository) -> WebhookEndpoint:
            current = _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)
            repo.update_webhook_endpoint(endpoint_id, {
                "secret": sealed, "previous_secret": current.secret, "previous_secret_expires_at": now + overlap,
            }, now)  # fmt: skip
            return _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)

        return WithSecret(await self._db.write(work), secret)


def _overlap(raw: object) -> timedelta:
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        raise InvalidParameter("overlap_hours", "must be a number of hours")
    hours = timedelta(hours=float(raw))
    if not timedelta(0) <= hours <= MAX_OVERLAP:
        raise InvalidParameter("overlap_hours", f"must be from 0 to {int(MAX_OVERLAP.total_seconds() // 3600)}")
    return hours


def _found(endpoint: WebhookEndpoint | None, endpoint_id: int) -> WebhookEndpoint:
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint
