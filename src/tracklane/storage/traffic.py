"""SQL for traffic rules and blocks, the click and conversion counts optimization rules judge, and the
blocklist a click is checked against (cached with the catalogue)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from tracklane.domain.targeting import MatchKind
from tracklane.domain.traffic import (
    Blocklist,
    BlockStatus,
    RuleKind,
    RuleStatus,
    TrafficBlock,
    TrafficRule,
    TrafficStat,
    blocklist,
)
from tracklane.resources.traffic import TrafficRuleCreate, TrafficRuleUpdate
from tracklane.services.ports import NewTrafficBlock, Page
from tracklane.storage import rows
from tracklane.storage.catalog_cache import CatalogCache
from tracklane.storage.paging import paged
from tracklane.storage.schema import clicks, conversions, traffic_blocks, traffic_rules


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    plain = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}
    if isinstance(plain.get("cvr_below_percent"), Decimal):
        plain["cvr_below_percent"] = str(plain["cvr_below_percent"])
    return plain


class SqlTraffic:
    conn: Connection
    cache: CatalogCache | None

    # rules
    def insert_traffic_rule(self, rule: TrafficRuleCreate, now: datetime) -> TrafficRule:
        values = rows.set_fields(rule)
        values.setdefault("values", [])
        values.setdefault("match", MatchKind.EXACT)
        values.update(created_at=now, updated_at=now)
        row = self.conn.execute(insert(traffic_rules).values(**_plain(values)).returning(*traffic_rules.c)).one()
        return rows.traffic_rule(row)

    def get_traffic_rule(self, rule_id: int) -> TrafficRule | None:
        row = self.conn.execute(select(traffic_rules).where(traffic_rules.c.id == rule_id)).one_or_none()
        return None if row is None else rows.traffic_rule(row)

    def list_traffic_rules(self, page: Page) -> list[TrafficRule]:
        return [rows.traffic_rule(r) for r in self.conn.execute(paged(select(traffic_rules), traffic_rules, page))]

    def update_traffic_rule(self, rule_id: int, changes: TrafficRuleUpdate, now: datetime) -> None:
        values = _plain({**rows.set_fields(changes), "updated_at": now})
        self.conn.execute(update(traffic_rules).where(traffic_rules.c.id == rule_id).values(**values))

    def delete_traffic_rule(self, rule_id: int) -> None:
        self.conn.execute(delete(traffic_blocks).where(traffic_blocks.c.rule_id == rule_id))
        self.conn.execute(delete(traffic_rules).where(traffic_rules.c.id == rule_id))

    def due_optimization_rules(self, evaluated_before: datetime) -> list[TrafficRule]:
        r = traffic_rules.c
        query = select(traffic_rules).where(
            r.kind == RuleKind.OPTIMIZE.value,
            r.status == RuleStatus.ACTIVE.value,
            or_(r.last_evaluated_at.is_(None), r.last_evaluated_at < evaluated_before),
        )
        return [rows.traffic_rule(row) for row in self.conn.execute(query.order_by(r.id))]

    def mark_evaluated(self, rule_id: int, now: datetime) -> None:
        self.conn.execute(update(traffic_rules).where(traffic_rules.c.id == rule_id).values(last_evaluated_at=now))

    def traffic_stats(self, rule: TrafficRule, since: datetime) -> list[TrafficStat]:
        c, v = clicks.c, conversions.c
        value = c[rule.variable.value]
        converted = and_(v.click_id == c.id, v.event_id.is_(None), v.status != "rejected")
        conditions = [c.created_at >= since, c.verdict == "accepted", c.is_bot.is_(False), value.is_not(None)]
        if rule.offer_id is not None:
            conditions.append(c.offer_id == rule.offer_id)
        if rule.partner_id is not None:
            conditions.append(c.partner_id == rule.partner_id)
        query = (
            select(c.offer_id, c.partner_id, value, func.count(func.distinct(c.id)), func.count(v.id))
            .select_from(clicks.outerjoin(conversions, converted))
            .where(and_(*conditions))
            .group_by(c.offer_id, c.partner_id, value)
        )
        return [
            TrafficStat(offer_id, partner_id, seen, int(count), int(won or 0))
            for offer_id, partner_id, seen, count, won in self.conn.execute(query)
        ]

    # blocks
    def insert_traffic_block(self, block: NewTrafficBlock) -> TrafficBlock:
        values = {
            "rule_id": block.rule_id, "offer_id": block.offer_id, "partner_id": block.partner_id,
            "variable": block.variable.value, "value": block.value, "clicks": block.clicks,
            "conversions": block.conversions, "cvr_percent": str(block.cvr_percent),
            "status": BlockStatus.ACTIVE.value, "created_at": block.created_at,
        }  # fmt: skip
        return rows.traffic_block(
            self.conn.execute(insert(traffic_blocks).values(**values).returning(*traffic_blocks.c)).one()
        )

    def get_traffic_block(self, block_id: int) -> TrafficBlock | None:
        row = self.conn.execute(select(traffic_blocks).where(traffic_blocks.c.id == block_id)).one_or_none()
        return None if row is None else rows.traffic_block(row)

    def list_traffic_blocks(self, page: Page) -> list[TrafficBlock]:
        return [rows.traffic_block(r) for r in self.conn.execute(paged(select(traffic_blocks), traffic_blocks, page))]

    def blocked_values(self, rule_id: int) -> set[tuple[int, int, str]]:
        b = traffic_blocks.c
        query = select(b.offer_id, b.partner_id, b.value).where(b.rule_id == rule_id)
        return {(offer_id, partner_id, value) for offer_id, partner_id, value in self.conn.execute(query)}

    def lift_traffic_block(self, block_id: int, by: str, reason: str, now: datetime) -> None:
        query = update(traffic_blocks).where(traffic_blocks.c.id == block_id)
        self.conn.execute(
            query.values(status=BlockStatus.LIFTED.value, lifted_at=now, lifted_by=by, lift_reason=reason)
        )

    def blocklist_for(self, offer_id: int, partner_id: int) -> Blocklist:
        if self.cache is not None:  # read on every click
            return self.cache.get(("blocklist", offer_id, partner_id), lambda: self._blocklist(offer_id, partner_id))
        return self._blocklist(offer_id, partner_id)

    def _blocklist(self, offer_id: int, partner_id: int) -> Blocklist:
        r = traffic_rules.c
        scoped = and_(
            or_(r.offer_id.is_(None), r.offer_id == offer_id),
            or_(r.partner_id.is_(None), r.partner_id == partner_id),
            r.status == RuleStatus.ACTIVE.value,
        )
        rules = [rows.traffic_rule(row) for row in self.conn.execute(select(traffic_rules).where(scoped))]
        if not any(rule.kind is RuleKind.OPTIMIZE for rule in rules):
            return blocklist(rules, ())
        b = traffic_blocks.c
        query = select(traffic_blocks).where(
            b.offer_id == offer_id, b.partner_id == partner_id, b.status == BlockStatus.ACTIVE.value
        )
        return blocklist(rules, [rows.traffic_block(row) for row in self.conn.execute(query)])
