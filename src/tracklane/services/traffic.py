"""Use cases of traffic rules: create, change, pause and delete block lists and optimization rules; evaluate an
optimization rule (on demand, and periodically in every server process and `tracklane worker`); list and
lift the blocks it made. Only the admin manages traffic; a partner reads the blocks that apply to it (so that
it stops sending what is turned away), an advertiser none.

An evaluation and the blocks it makes are one write, with `traffic.optimized` queued in it when anything new
was blocked. Evaluations in several processes at once are harmless: a block is unique per rule, offer,
partner and value, and the loser of that race is answered as having blocked nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from tracklane.domain.errors import Forbidden, InvalidParameter, NotFound
from tracklane.domain.model import Role
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.domain.traffic import RuleKind, TrafficBlock, TrafficRule, TrafficStat, over_threshold
from tracklane.domain.webhooks import EventType
from tracklane.resources.traffic import (
    BlockedVariable,
    OptimizedRule,
    Relation,
    TrafficOptimizedData,
    TrafficRuleCreate,
    TrafficRuleUpdate,
)
from tracklane.services.outbox import emit
from tracklane.services.ports import (
    Clock,
    Database,
    DuplicateKey,
    NewTrafficBlock,
    Page,
    Refused,
    Repository,
    raise_refused,
    refusing,
)

log = logging.getLogger("tracklane.traffic")


class TrafficService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, body: TrafficRuleCreate) -> TrafficRule:
        now = self._clock()

        def work(repo: Repository) -> TrafficRule:
            _check_scope(repo, body.offer_id, body.partner_id)
            return repo.insert_traffic_rule(body, now)

        return raise_refused(await self._db.write(refusing(work)))

    async def get(self, rule_id: int) -> TrafficRule:
        return await self._db.read(lambda repo: _rule(repo, rule_id))

    async def rules(self, page: Page) -> list[TrafficRule]:
        return await self._db.read(lambda repo: repo.list_traffic_rules(page))

    async def update(self, rule_id: int, changes: TrafficRuleUpdate) -> TrafficRule:
        now = self._clock()

        def work(repo: Repository) -> TrafficRule:
            changes.refuse_other_kind(_rule(repo, rule_id).kind)
            repo.update_traffic_rule(rule_id, changes, now)
            return _rule(repo, rule_id)

        return raise_refused(await self._db.write(refusing(work)))

    async def delete(self, rule_id: int) -> None:
        def work(repo: Repository) -> None:
            _rule(repo, rule_id)
            repo.delete_traffic_rule(rule_id)

        raise_refused(await self._db.write(refusing(work)))

    async def evaluate(self, rule_id: int) -> tuple[datetime, list[TrafficBlock]]:
        """Evaluate one optimization rule now (active or paused); the blocks it made this time."""
        now = self._clock()

        def work(repo: Repository) -> list[TrafficBlock] | Refused:
            rule = repo.get_traffic_rule(rule_id)
            if rule is None:
                return Refused(NotFound(f"traffic rule {rule_id} does not exist"))
            if rule.kind is not RuleKind.OPTIMIZE:
                return Refused(InvalidParameter("kind", "only an optimization rule is evaluated; a block rule "
                                                        "applies at once"))  # fmt: skip
            return _evaluate(repo, rule, now)

        return now, await self._write_blocks(work)

    async def optimize_due(self, interval: timedelta) -> int:
        """Evaluate each active optimization rule not evaluated within `interval`; how many values it blocked."""
        now = self._clock()
        due = await self._db.read(lambda repo: repo.due_optimization_rules(now - interval))
        blocked = 0
        for rule in due:
            blocked += len(await self._write_blocks(partial(_evaluate, rule=rule, now=now)))
        return blocked

    async def _write_blocks(self, work: Callable[[Repository], list[TrafficBlock] | Refused]) -> list[TrafficBlock]:
        try:
            return raise_refused(await self._db.write(work))
        except DuplicateKey:  # another process evaluated the rule at the same moment
            return []

    async def blocks(self, scope: Scope, page: Page) -> list[TrafficBlock]:
        """Every block (the admin), or the partner key's own; a filter naming another partner is `Forbidden`."""
        _reading_blocks(scope)
        narrowed = replace(page, filters=narrow(scope, page.filters))
        return await self._db.read(lambda repo: repo.list_traffic_blocks(narrowed))

    async def block(self, scope: Scope, block_id: int) -> TrafficBlock:
        """One block; another partner's is not found, exactly like one that does not exist."""
        _reading_blocks(scope)
        found = await self._db.read(lambda repo: _block(repo, block_id))
        if not owns(scope, None, found.partner_id):
            raise NotFound(f"traffic block {block_id} does not exist")
        return found

    async def lift(self, block_id: int, by: str, reason: str) -> TrafficBlock:
        """Let the value through again, for good: the rule will not block it again."""
        now = self._clock()

        def work(repo: Repository) -> TrafficBlock:
            _block(repo, block_id)
            repo.lift_traffic_block(block_id, by, reason, now)
            return _block(repo, block_id)

        return raise_refused(await self._db.write(refusing(work)))


class TrafficOptimizer:
    """Background work: evaluate the due optimization rules every `interval_seconds`."""

    def __init__(self, service: TrafficService, interval_seconds: float) -> None:
        self._service = service
        self._interval = interval_seconds
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                blocked = await self._service.optimize_due(timedelta(seconds=self._interval))
                if blocked:
                    log.info("traffic optimization blocked %d values", blocked)
            except Exception:  # the database is away: the next round tries again
                log.exception("traffic optimization failed; retrying")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)


def _reading_blocks(scope: Scope) -> None:
    if scope.role is Role.ADVERTISER:
        raise Forbidden("traffic blocks are read by an admin or by the partner they apply to")


def _check_scope(repo: Repository, offer_id: int | None, partner_id: int | None) -> None:
    if offer_id is not None and repo.get_offer(offer_id) is None:
        raise InvalidParameter("offer_id", f"offer {offer_id} does not exist")
    if partner_id is not None and repo.get_partner(partner_id) is None:
        raise InvalidParameter("partner_id", f"partner {partner_id} does not exist")


def _rule(repo: Repository, rule_id: int) -> TrafficRule:
    rule = repo.get_traffic_rule(rule_id)
    if rule is None:
        raise NotFound(f"traffic rule {rule_id} does not exist")
    return rule


def _block(repo: Repository, block_id: int) -> TrafficBlock:
    block = repo.get_traffic_block(block_id)
    if block is None:
        raise NotFound(f"traffic block {block_id} does not exist")
    return block


def _evaluate(repo: Repository, rule: TrafficRule, now: datetime) -> list[TrafficBlock]:
    """Block what the rule finds and was never blocked by it (a lifted block stays lifted); emit
    `traffic.optimized` with what is new."""
    assert rule.window_days is not None
    known = repo.blocked_values(rule.id)
    found = [
        s
        for s in over_threshold(rule, repo.traffic_stats(rule, now - timedelta(days=rule.window_days)))
        if (s.offer_id, s.partner_id, s.value) not in known
    ]
    made = [repo.insert_traffic_block(_new_block(rule, s, now)) for s in found]
    repo.mark_evaluated(rule.id, now)
    if made:
        emit(repo, EventType.TRAFFIC_OPTIMIZED, _optimized(repo, rule, made), now)
    return made


def _new_block(rule: TrafficRule, stat: TrafficStat, now: datetime) -> NewTrafficBlock:
    return NewTrafficBlock(
        rule_id=rule.id, offer_id=stat.offer_id, partner_id=stat.partner_id, variable=rule.variable,
        value=stat.value, clicks=stat.clicks, conversions=stat.conversions, cvr_percent=stat.cvr_percent,
        created_at=now,
    )  # fmt: skip


def _optimized(repo: Repository, rule: TrafficRule, blocks: list[TrafficBlock]) -> TrafficOptimizedData:
    assert rule.min_clicks is not None and rule.cvr_below_percent is not None and rule.window_days is not None
    return TrafficOptimizedData(
        rule=OptimizedRule(
            id=rule.id, name=rule.name, variable=rule.variable, min_clicks=rule.min_clicks,
            cvr_below_percent=str(rule.cvr_below_percent), window_days=rule.window_days,
        ),
        blocked=[
            BlockedVariable(
                block_id=b.id, variable=b.variable, value=b.value, offer=_offer(repo, b.offer_id),
                partner=_partner(repo, b.partner_id), clicks=b.clicks, conversions=b.conversions,
                cvr_percent=str(b.cvr_percent),
            )
            for b in blocks
        ],
    )  # fmt: skip


def _offer(repo: Repository, offer_id: int) -> Relation:
    offer = repo.get_offer(offer_id)
    return Relation(id=offer_id, name=offer.name if offer else "")


def _partner(repo: Repository, partner_id: int) -> Relation:
    partner = repo.get_partner(partner_id)
    return Relation(id=partner_id, name=partner.name if partner else "")
