"""Segment sources: the bodies that create and change one, and the source as the admin shows it.

A source belongs to one advertiser (`advertiser_id`, required on create) and attributes, refunds and links
customers only within that advertiser's clicks and conversions. A source migrated without one has
`advertiser_id: null` and attributes nothing until an admin sets it. The view carries the write key, the
webhook signing secret and the effective settings (the preset with the overrides applied); only admins
manage sources for now.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from tracklane.domain.catalog import parse_name
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.segment.model import Source
from tracklane.domain.segment.settings import settings_json, source_settings
from tracklane.resources.fields import UNSET, Id, Name, Struct, Unset, View

Preset = Literal["default", "everflow", "impact", "tractionboard"]

_WRITE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
WriteKey = Annotated[str, msgspec.Meta(
    max_length=64, description="6 to 64 letters, digits, '_' or '-'; keep the key a source has at Segment",
    extra_json_schema={"pattern": _WRITE_KEY.pattern}, examples=["wk_3f9a1c2b7d"])]  # fmt: skip
Settings = Annotated[dict[str, Any], msgspec.Meta(
    description="overrides of the preset's mapping settings (see docs/segment.md)",
    examples=[{"referrer_types": ["tracklane", "everflow"]}])]  # fmt: skip


class SourceCreate(Struct):
    name: Name
    advertiser_id: Id
    preset: Preset = "default"
    write_key: WriteKey | None = None
    settings: Settings | None = None

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        if self.write_key is not None and not _WRITE_KEY.match(self.write_key):
            raise InvalidParameter("write_key", "must be 6 to 64 letters, digits, '_' or '-'")
        self.settings = dict(self.settings or {})
        source_settings(self.preset, self.settings)


class SourceUpdate(Struct):
    """`settings` replaces the overrides (null: none) and is checked against the source's preset when applied;
    `advertiser_id` gives a source its advertiser (a migrated source may have none)."""

    name: Name | Unset = UNSET
    advertiser_id: Id | Unset = UNSET
    settings: Settings | Unset | None = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)
        if self.settings is None:
            self.settings = {}


class SourceView(View, frozen=True):
    """A Segment source with its write key, webhook secret and effective mapping settings."""

    id: int
    name: str
    advertiser_id: int | None
    preset: str
    write_key: str
    webhook_secret: str
    settings: dict[str, Any]
    effective_settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def source_view(s: Source) -> SourceView:
    return SourceView(
        id=s.id, name=s.name, advertiser_id=s.advertiser_id, preset=s.preset, write_key=s.write_key,
        webhook_secret=s.webhook_secret, settings=dict(s.settings),
        effective_settings=settings_json(source_settings(s.preset, s.settings)), created_at=s.created_at,
        updated_at=s.updated_at,
    )  # fmt: skip
