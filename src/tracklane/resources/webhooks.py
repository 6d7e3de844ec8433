"""Webhook endpoints: the bodies that register one, change it and rotate its secret, and the endpoint as the
admin sees it (webhooks are the network's own integrations: admin-only). The signing secret leaves the
process once, in the answer that issues it (`WebhookEndpointIssued`); it is never shown again."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Final

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import validate_template
from tracklane.domain.webhooks import EndpointStatus, EventType, WebhookEndpoint
from tracklane.resources.fields import UNSET, Struct, Text, Unset, View

MAX_OVERLAP_HOURS: Final = 168
DEFAULT_OVERLAP_HOURS: Final = 24.0

EventTypeName = Annotated[str, msgspec.Meta(extra_json_schema={"enum": [t.value for t in EventType]},
                                            examples=["conversion.registered"])]  # fmt: skip
EventTypes = Annotated[
    list[EventTypeName],
    msgspec.Meta(min_length=1, description="the event types to receive (duplicates are dropped); null: every type"),
]
WebhookUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=4096, description="http(s) URL receiving "
                                         "Standard Webhooks POSTs; no macros",
                                         examples=["https://hooks.example.com/tracklane"])]  # fmt: skip
OverlapHours = Annotated[
    float,
    msgspec.Meta(ge=0, le=MAX_OVERLAP_HOURS, description="how long the old secret keeps signing too, in hours"),
]


def _webhook_url(url: str) -> str:
    url = validate_template(url, "url")
    if "{" in url:
        raise InvalidParameter("url", "a webhook URL takes no macros")
    return url


def _event_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - {t.value for t in EventType})
    if unknown:
        raise InvalidParameter("event_types", "unknown event type " + ", ".join(unknown))
    return list(dict.fromkeys(types))


class WebhookCreate(Struct):
    url: WebhookUrl
    event_types: EventTypes | None = None
    description: Text | None = None

    def __post_init__(self) -> None:
        self.url = _webhook_url(self.url)
        if self.event_types is not None:
            self.event_types = _event_types(self.event_types)


class WebhookUpdate(Struct):
    url: WebhookUrl | Unset = UNSET
    event_types: EventTypes | Unset | None = UNSET
    description: Text | Unset | None = UNSET
    status: Annotated[EndpointStatus, msgspec.Meta(
        description="active re-enables a disabled endpoint; disabled pauses it")] | Unset = UNSET  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.url, str):
            self.url = _webhook_url(self.url)
        if isinstance(self.event_types, list):
            self.event_types = _event_types(self.event_types)


class RotateSecret(Struct):
    overlap_hours: OverlapHours = DEFAULT_OVERLAP_HOURS

    def __post_init__(self) -> None:
        # Decoding already bounds it; this guards a body built in code (a JSON number never is inf or NaN).
        if not (math.isfinite(self.overlap_hours) and 0 <= self.overlap_hours <= MAX_OVERLAP_HOURS):
            raise InvalidParameter("overlap_hours", f"must be a number of hours from 0 to {MAX_OVERLAP_HOURS}")


class WebhookEndpointView(View, frozen=True):
    """The endpoint as the admin API shows it, without its secret."""

    id: int
    url: str
    description: str | None
    event_types: list[str] | None
    status: EndpointStatus
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointIssued(WebhookEndpointView, frozen=True):
    """The answer that issues a secret (creation, rotation): the only time the secret is shown."""

    secret: Annotated[str, msgspec.Meta(description="the whsec_ signing secret; shown this once",
                                        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])]  # fmt: skip


def webhook_endpoint_view(e: WebhookEndpoint) -> WebhookEndpointView:
    return WebhookEndpointView(
        id=e.id, url=e.url, description=e.description,
        event_types=None if e.event_types is None else list(e.event_types), status=e.status,
        disabled_reason=e.disabled_reason, disabled_at=e.disabled_at, failing_since=e.failing_since,
        previous_secret_expires_at=e.previous_secret_expires_at, created_at=e.created_at, updated_at=e.updated_at,
    )  # fmt: skip


def webhook_endpoint_issued(e: WebhookEndpoint, secret: str) -> WebhookEndpointIssued:
    return WebhookEndpointIssued(**msgspec.structs.asdict(webhook_endpoint_view(e)), secret=secret)
