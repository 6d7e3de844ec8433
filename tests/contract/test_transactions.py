"""Transactions: a write is committed whole or not at all; a savepoint is undone alone; reads see commits."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.builders import NOW, new_click
from tests.contract.conftest import Store
from tracklane.domain.errors import DuplicateKey
from tracklane.domain.model import Click
from tracklane.services.ports import Page, Repository


class Refused(Exception):
    pass


def _clicks(store: Store) -> list[Click]:
    return store.read(lambda repo: repo.list_clicks(Page(limit=100)))


def test_a_write_is_committed_and_read_back(store: Store) -> None:
    click = store.write(lambda repo: repo.insert_click(new_click()))
    assert store.read(lambda repo: repo.get_click(click.transaction_id)) == click


def test_a_write_that_raises_keeps_nothing(store: Store) -> None:
    def work(repo: Repository) -> None:
        repo.insert_advertiser("Kept?", "token-1", NOW)
        repo.insert_click(new_click())
        raise Refused

    with pytest.raises(Refused):
        store.write(work)
    assert _clicks(store) == []
    assert store.read(lambda repo: repo.find_advertiser_by_token("token-1")) is None


def test_a_failed_write_does_not_spoil_the_ones_before_or_after(store: Store) -> None:
    first = store.write(lambda repo: repo.insert_click(new_click()))
    duplicate = new_click(transaction_id=first.transaction_id)
    with pytest.raises(DuplicateKey):
        store.write(lambda repo: repo.insert_click(duplicate))
    last = store.write(lambda repo: repo.insert_click(new_click()))
    assert [c.id for c in _clicks(store)] == [last.id, first.id]


def test_a_savepoint_undoes_only_its_own_work(store: Store) -> None:
    def work(repo: Repository) -> None:
        repo.insert_click(new_click(transaction_id="a" * 32))
        try:
            with repo.savepoint():
                repo.insert_click(new_click(transaction_id="b" * 32))
                raise Refused
        except Refused:
            pass
        with repo.savepoint():
            repo.insert_click(new_click(transaction_id="c" * 32))

    store.write(work)
    assert sorted(c.transaction_id for c in _clicks(store)) == ["a" * 32, "c" * 32]


def test_the_awaitable_ports_give_results_and_errors(store: Store) -> None:
    async def scenario() -> None:
        click = await store.db.write(lambda repo: repo.insert_click(new_click()))
        assert await store.db.read(lambda repo: repo.get_click(click.transaction_id)) == click
        with pytest.raises(Refused):
            await store.db.write(_refuse)
        writes = [store.db.write(lambda repo: repo.insert_click(new_click())) for _ in range(5)]
        assert len({c.id for c in await asyncio.gather(*writes)}) == 5

    asyncio.run(scenario())
    assert len(_clicks(store)) == 6


def _refuse(repo: Repository) -> None:
    raise Refused
