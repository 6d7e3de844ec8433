"""Deleting a partner postback: no read finds it any more (by id, in a list, among its partner's postbacks that
fire), no change reaches it, and its deliveries stay in the outbox with its id."""

from __future__ import annotations

from tests.contract.builders import NOW, at, body, new_delivery
from tests.contract.conftest import Store
from tracklane.domain.partner_postbacks import PostbackStatus
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate
from tracklane.services.ports import Page, PostbackState


def test_a_deleted_postback_is_found_by_nothing_and_its_deliveries_stay(store: Store) -> None:
    partner = store.write(lambda repo: repo.insert_partner("Pat", "p@example.com", "active", NOW))
    created = [
        store.write(
            lambda repo, n=n: repo.insert_partner_postback(  # type: ignore[misc]
                partner.id, body(PartnerPostbackCreate, url=f"https://partner.example/{n}"), NOW
            )
        )
        for n in range(2)
    ]
    doomed, kept = created
    delivery = store.write(lambda repo: repo.insert_delivery(new_delivery(postback_id=doomed.id)))
    assert delivery is not None

    store.write(lambda repo: repo.delete_partner_postback(doomed.id, at(1)))
    assert store.read(lambda repo: repo.get_partner_postback(doomed.id)) is None
    assert store.read(lambda repo: repo.postbacks_of_partner(partner.id)) == [kept]
    for filters in ({}, {"partner_id": partner.id}, {"status": PostbackStatus.ACTIVE.value}):
        assert store.read(lambda repo, f=filters: repo.list_partner_postbacks(Page(filters=f))) == [kept]  # type: ignore[misc]

    store.write(
        lambda repo: repo.update_partner_postback(
            doomed.id, body(PartnerPostbackUpdate, url="https://x.example/"), at(2)
        )
    )
    store.write(lambda repo: repo.set_partner_postback_state(doomed.id, PostbackState(PostbackStatus.ACTIVE), at(2)))
    store.write(lambda repo: repo.delete_partner_postback(doomed.id, at(3)))
    assert store.read(lambda repo: repo.get_partner_postback(doomed.id)) is None, "nothing brings it back"
    assert store.read(lambda repo: repo.get_partner_postback(kept.id)) == kept

    stored = store.read(lambda repo: repo.list_deliveries(Page(filters={"postback_id": doomed.id})))
    assert stored == [delivery]
