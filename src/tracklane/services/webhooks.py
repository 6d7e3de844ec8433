"""Use cases of webhook endpoints: create (the `whsec_` secret is shown once, then stored sealed), change,
re-enable, rotate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from tracklane.domain.destinations import AllowList, refuse_destination
from tracklane.domain.errors import NotFound
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.fields import UNSET
from tracklane.resources.webhooks import RotateSecret, WebhookCreate, WebhookUpdate
from tracklane.services.ports import (
    Clock,
    Database,
    EndpointState,
    Page,
    Repository,
    SecretBox,
    SecretRotation,
    raise_refused,
    refusing,
)

DISABLED_BY_ADMIN = "disabled by an administrator"


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

    async def create(self, body: WebhookCreate) -> WithSecret:
        refuse_destination(body.url, self._allow, "url")
        secret, now = self._new_secret(), self._clock()
        sealed = self._box.seal(secret)
        endpoint = await self._db.write(lambda repo: repo.insert_webhook_endpoint(body, sealed, now))
        return WithSecret(endpoint, secret)

    async def get(self, endpoint_id: int) -> WebhookEndpoint:
        return _found(await self._db.read(lambda repo: repo.get_webhook_endpoint(endpoint_id)), endpoint_id)

    async def list(self, page: Page) -> list[WebhookEndpoint]:
        return await self._db.read(lambda repo: repo.list_webhook_endpoints(page))

    async def update(self, endpoint_id: int, body: WebhookUpdate) -> WebhookEndpoint:
        """Change the URL, types or description; `"status": "active"` re-enables a disabled endpoint."""
        if isinstance(body.url, str):
            refuse_destination(body.url, self._allow, "url")
        now = self._clock()

        def work(repo: Repository) -> WebhookEndpoint:
            current = _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)
            repo.update_webhook_endpoint(endpoint_id, body, now)
            if body.status is EndpointStatus.ACTIVE:
                repo.set_webhook_endpoint_state(endpoint_id, EndpointState(EndpointStatus.ACTIVE), now)
            elif body.status is not UNSET:
                state = replace(EndpointState.of(current), status=EndpointStatus.DISABLED,
                                disabled_reason=DISABLED_BY_ADMIN, disabled_at=now)  # fmt: skip
                repo.set_webhook_endpoint_state(endpoint_id, state, now)
            return _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)

        return raise_refused(await self._db.write(refusing(work)))

    async def rotate_secret(self, endpoint_id: int, body: RotateSecret) -> WithSecret:
        """Issue a new secret; the old one keeps signing too until the overlap ends (default 24 h)."""
        overlap = timedelta(hours=body.overlap_hours)
        secret, now = self._new_secret(), self._clock()
        sealed = self._box.seal(secret)

        def work(repo: Repository) -> WebhookEndpoint:
            current = _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)
            repo.rotate_webhook_secret(endpoint_id, SecretRotation(sealed, current.secret, now + overlap), now)
            return _found(repo.get_webhook_endpoint(endpoint_id), endpoint_id)

        return WithSecret(raise_refused(await self._db.write(refusing(work))), secret)


def _found(endpoint: WebhookEndpoint | None, endpoint_id: int) -> WebhookEndpoint:
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint
