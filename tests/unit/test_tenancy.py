"""The tenancy rules as a table: which filters a key's reads get and which rows it owns (what it may read of
a row is its role's view type: see tests/unit/test_role_views.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracklane.domain.errors import Forbidden
from tracklane.domain.model import ApiKey, Role
from tracklane.domain.tenancy import Scope, narrow, owns, scope_of

ADMIN = Scope(Role.ADMIN)
ADVERTISER = Scope(Role.ADVERTISER, advertiser_id=7)
PARTNER = Scope(Role.PARTNER, partner_id=3)


@pytest.mark.parametrize(
    ("scope", "asked", "narrowed"),
    [
        (ADMIN, {"partner_id": 9, "status": None}, {"partner_id": 9}),
        (ADVERTISER, {"offer_id": 2}, {"offer_id": 2, "advertiser_id": 7}),
        (ADVERTISER, {"advertiser_id": 7}, {"advertiser_id": 7}),
        (PARTNER, {}, {"partner_id": 3}),
    ],
)
def test_reads_are_narrowed_to_the_tenant(scope: Scope, asked: dict[str, object], narrowed: dict[str, object]) -> None:
    assert narrow(scope, asked) == narrowed


@pytest.mark.parametrize(("scope", "asked"), [(ADVERTISER, {"advertiser_id": 8}), (PARTNER, {"partner_id": 4})])
def test_asking_for_another_tenant_is_forbidden(scope: Scope, asked: dict[str, object]) -> None:
    with pytest.raises(Forbidden):
        narrow(scope, asked)


@pytest.mark.parametrize(
    ("scope", "advertiser_id", "partner_id", "expected"),
    [
        (ADMIN, 1, 1, True),
        (ADVERTISER, 7, 1, True),
        (ADVERTISER, 8, 3, False),
        (PARTNER, 7, 3, True),
        (PARTNER, 7, 4, False),
        (PARTNER, None, None, False),
    ],
)
def test_ownership(scope: Scope, advertiser_id: int | None, partner_id: int | None, expected: bool) -> None:
    assert owns(scope, advertiser_id, partner_id) is expected


def test_a_tenant_key_without_its_tenant_is_refused() -> None:
    key = ApiKey(
        id=1,
        role=Role.PARTNER,
        advertiser_id=None,
        partner_id=None,
        prefix="tlk_x",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(Forbidden):
        scope_of(key)
