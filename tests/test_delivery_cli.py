"""`tracklane deliveries list|resend|replay` as operators run them, against the server's database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx

from tests.servers import running_server, secrets_env
from tests.test_cli import clean_env


def tracklane(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracklane", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(TRACKLANE_DATABASE_URL=database_url, TRACKLANE_LOG_LEVEL="WARNING", **secrets_env(database_url)),
    )


def test_list_resend_and_replay_deliveries(database_url: str) -> None:
    with (
        running_server(database_url, delivery_in_serve=False) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = admin.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/tracklane"}).json()
        admin.post("/api/v1/advertisers", json={"name": "Acme"})
        admin.patch(f"/api/v1/webhooks/{hook['id']}", json={"status": "disabled"})
        admin.post("/api/v1/advertisers", json={"name": "Globex"})
        pending, skipped = (
            admin.get("/api/v1/deliveries", params={"status": "pending"}).json()["data"]
            + admin.get("/api/v1/deliveries", params={"status": "skipped"}).json()["data"]
        )

        listed = tracklane(database_url, "deliveries", "list")
        assert listed.returncode == 0, listed.stderr
        lines = [line.split("\t") for line in listed.stdout.splitlines()]
        assert [(int(f[0]), f[1], f[4], f[5]) for f in lines] == [
            (skipped["id"], "skipped", "advertiser.created", skipped["message_id"]),
            (pending["id"], "pending", "advertiser.created", pending["message_id"]),
        ]
        only_skipped = tracklane(database_url, "deliveries", "list", "--status", "skipped").stdout.splitlines()
        assert len(only_skipped) == 1

        resent = tracklane(database_url, "deliveries", "resend", str(pending["id"]))
        assert resent.returncode == 0 and pending["message_id"] in resent.stdout
        missing = tracklane(database_url, "deliveries", "resend", "999")
        assert missing.returncode == 1 and "delivery 999 does not exist" in missing.stderr

        now = datetime.now(UTC)
        window = ["--from", (now - timedelta(hours=1)).isoformat(), "--to", (now + timedelta(hours=1)).isoformat()]
        replayed = tracklane(database_url, "deliveries", "replay", *window)
        assert replayed.returncode == 0, replayed.stderr
        assert json.loads(replayed.stdout) == {"replayed": 1}
        requeued = admin.get(f"/api/v1/deliveries/{skipped['id']}").json()
        assert (requeued["status"], requeued["message_id"]) == ("pending", skipped["message_id"])
        backwards = tracklane(database_url, "deliveries", "replay", "--from", "2026-02-01", "--to", "2026-01-01")
        assert backwards.returncode == 1 and "to:" in backwards.stderr
