"""Two servers (two writers) on one database change the same conversion at once: every refund counts, each
leaves its audit steps, and the report's sums (kept in the rollup cells with each write) equal the
conversion's money: no writer changes a conversion from a copy another writer has changed meanwhile."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx

from tests import factories
from tests.conftest import BROWSER_UA
from tests.servers import two_servers
from tracklane.resources.reports import ReportQuery

REFUNDS = 20
#: 10 % of the sale for the network, 5 % for the partner: every refund moves both.
SALE_PRICED = {"revenue": {"type": "cps", "percent": "10"}, "payout": {"type": "cps", "percent": "5"}}


async def _refund_at_once(urls: list[str], key: str, conversion_id: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        return await asyncio.gather(*(
            client.patch(f"{urls[n % 2]}/api/v1/conversions/{conversion_id}",
                         json={"refund": "1.00", "reason": f"refund {n}"})
            for n in range(REFUNDS)
        ))  # fmt: skip


def test_refunds_through_two_servers_at_once_all_count_and_the_report_follows(database_url: str) -> None:
    with (
        two_servers(database_url) as (first, second, api),
        httpx.Client(base_url=first.base_url, headers={"User-Agent": BROWSER_UA}) as visitor,
    ):
        adv, offer, partner = factories.program(api, **SALE_PRICED)
        tid = factories.click(visitor, offer["id"], partner["id"])
        posted = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                                  "amount": "100.00"})  # fmt: skip
        assert posted.status_code == 200, posted.text
        conversion_id = posted.json()["conversion_id"]
        answers = asyncio.run(_refund_at_once([first.base_url, second.base_url], first.admin_key, conversion_id))
        assert [a.status_code for a in answers] == [200] * REFUNDS, [a.text for a in answers][:3]

        conversion = api.get(f"/api/v1/conversions/{conversion_id}").json()
        assert (conversion["amount"], conversion["revenue"], conversion["payout"]) == ("80.00", "8.00", "4.00")
        refunds = [s for s in conversion["trace"] if s["step"] == "amount"]
        assert len(refunds) == REFUNDS
        assert sorted(Decimal(s["outcome"]) for s in refunds) == [Decimal(80 + n) for n in range(REFUNDS)]

        report = api.get("/api/v1/reports", params={"group_by": "offer", "offer_id": offer["id"]}).json()
        (row,) = report["rows"]
        assert (row["sale_amount"], row["revenue"], row["payout"]) == ("80.00", "8.00", "4.00")
        raw = first.container.db.read_now(
            lambda repo: repo.report(ReportQuery(("offer",), offer_id=offer["id"]), from_rollups=False)  # type: ignore[attr-defined]
        )
        cells = first.container.db.read_now(lambda repo: repo.report(ReportQuery(("offer",), offer_id=offer["id"])))  # type: ignore[attr-defined]
        assert cells == raw
