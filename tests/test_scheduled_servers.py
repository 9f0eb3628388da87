"""Two `ivr serve` sharing one PostgreSQL database: a switch and a publish scheduled a few seconds ahead are
each carried out exactly once (by whichever server's `ivr background` claims it), and a publish the go-live
check refuses at its time is refused once, with an alert on /metrics."""
from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from conftest import PG_URL
from helpers import wait_for
from test_scheduled_changes import draft
from ivr.store import announcements, scheduled
from ivr.store.db import Database
from ivr.store.models import AuditEntry, utcnow
from ivr.store.users import add_user, create_token


@pytest.mark.slow
def test_of_two_servers_each_planned_change_is_carried_out_once(config, server, db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("two servers share a PostgreSQL database: set DATABASE_URL to a PostgreSQL server"
                    if not PG_URL else "runs once, on the PostgreSQL backend")
    (tmp_path / "b").mkdir()
    shutil.copy2(config.instance_path / "data.key", tmp_path / "b" / "data.key")  # one data key for both
    a, b = server(workers=1), server(workers=1, IVR_INSTANCE_PATH=str(tmp_path / "b"))
    db = Database(config.db_url)
    try:
        add_user(db, "ada", "admin", actor="test")
        bearer = {"Authorization": "Bearer " + create_token(db, "ada", actor="test")}
        statement = draft(db, "An update: the stolen cards have been blocked.")
        advice = draft(db, "Advice: watch your statements.", topic="advice")
        at = (utcnow() + timedelta(seconds=6)).isoformat()
        plans = [{"kind": "mode", "mode": "live", "override": "agents are on the bridge line"},
                 {"kind": "publish", "announcement_id": statement["id"], "override": "Spanish follows at ten"},
                 {"kind": "publish", "announcement_id": advice["id"]}]  # no override: the check must pass
        ids = []
        for n, plan in enumerate(plans):
            made = requests.post((a, b)[n % 2].staff_url + "/api/schedule", headers=bearer, timeout=10,
                                 json={**plan, "at": at, "reason": "planned for the morning"})
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        # Two-person publishing: planning a publish asked for approval; a second person approves both ahead.
        add_user(db, "bea", "ops", actor="test")
        second = {"Authorization": "Bearer " + create_token(db, "bea", actor="test")}
        for version in (statement, advice):
            approved = requests.post(f"{b.staff_url}/api/announcements/{version['id']}/approve", headers=second,
                                     json={"reason": "read it"}, timeout=10)
            assert approved.status_code == 200 and approved.json()["status"] == "draft", approved.text

        def finished() -> dict:
            changes = requests.get(b.staff_url + "/api/schedule", headers=bearer, timeout=10).json()["changes"]
            return {c["id"]: c for c in changes if c["status"] not in ("pending", "carrying-out")}

        assert wait_for(lambda: len(finished()) == 3, timeout=60), finished()
        wait_for(lambda: False, timeout=3)  # both servers keep looking: nothing may happen twice
        done = finished()
        assert [done[i]["status"] for i in ids] == ["done", "done", "refused"], done
        assert "the go-live check found" in done[ids[2]]["outcome"]
        with db.read() as conn:
            audit = conn.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.subject)
                                 .where(AuditEntry.at >= statement["created_at"])).all()
        actions = [r.action for r in audit]
        assert actions.count("mode.set") == 1 and actions.count("announcement.publish") == 1
        assert actions.count("schedule.done") == 2 and actions.count("schedule.refused") == 1
        assert {r.actor for r in audit if r.action in ("mode.set", "announcement.publish")} == {
            f"ada (scheduled change {ids[0]})", f"ada (scheduled change {ids[1]})"}
        assert requests.get(a.staff_url + "/api/mode", headers=bearer, timeout=10).json()["mode"] == "live"
        assert announcements.get(db, statement["id"])["status"] == "published"
        assert announcements.get(db, advice["id"])["status"] == "draft"
        assert scheduled.counts(db)["refused"] == 1
        logs = [srv.log_path.read_text() for srv in (a, b)]  # the alert, in the log of the server that refused it
        assert sum(f"scheduled change {ids[2]} refused" in log for log in logs) == 1
        for srv in (a, b):  # and on every server's /metrics
            metrics = requests.get(srv.staff_url + "/metrics", timeout=10).text
            assert 'ivr_scheduled_changes{status="refused"} 1.0' in metrics
    finally:
        db.dispose()
