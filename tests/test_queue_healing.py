"""Queue state that heals: a call that ended leaves its queue even when Twilio's Enqueue action never comes,
and entries left "waiting" long past their queue's maximum are closed on a timer, logged and counted."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from conftest import AUTH_TOKEN
from helpers import wait_for
from ivr.spool.batch import write_records
from ivr.store import queues
from ivr.store.db import Database
from ivr.store.models import QueueEntry
from ivr.store.state import set_mode
from ivr.tools.simulate import HttpTransport, SimulatedCall

# Fixed when the module is collected, which may be many minutes before a test runs: every clock the
# tests compare with is given NOW.
NOW = datetime.now(timezone.utc)


def _enter(sid, at=NOW):
    return {"type": "queue_enter", "call_sid": sid, "queue": "general", "priority": 10, "language": "en",
            "reason": "test", "severity": "", "affected": False, "at": at.timestamp()}


def _status(sid, status="completed"):
    return {"type": "status", "call_sid": sid, "status": status, "sequence": 3, "duration": 40,
            "at": NOW.timestamp()}


def test_a_final_status_closes_the_entry_and_a_late_queue_result_still_says_how(hotline):
    db = hotline.db
    with db.write() as conn:
        write_records(conn, [_enter("CA1"), _enter("CA2"), _status("CA1"), _status("CA2", "in-progress")])
    assert queues.entry(db, "CA1")["status"] == "ended"
    assert queues.entry(db, "CA2")["status"] == "waiting"  # still on the line
    assert queues.queue_stats(db, cached=False)["general"].waiting == 1
    with db.write() as conn:  # the Enqueue action after all, later: the queue's own word wins
        write_records(conn, [{"type": "queue_exit", "call_sid": "CA1", "status": "bridged", "wait_s": 30,
                              "at": NOW.timestamp()}])
    assert queues.entry(db, "CA1")["status"] == "bridged"


def test_entries_waiting_past_the_maximum_plus_a_margin_are_closed_and_counted(hotline):
    db = hotline.db
    limit = hotline.rules.rules.queues["general"].max_wait_minutes
    old = NOW - timedelta(minutes=limit + queues.RECONCILE_MARGIN_MINUTES + 1)
    recent = NOW - timedelta(minutes=limit)  # long, but a caller may really still be waiting
    with db.write() as conn:
        write_records(conn, [_enter("CAold", old), _enter("CArecent", recent)])
    closed = queues.reconcile(db, {"general": limit}, now=NOW)
    assert [e["call_sid"] for e in closed] == ["CAold"]
    assert queues.entry(db, "CAold")["status"] == "expired"
    assert queues.entry(db, "CArecent")["status"] == "waiting"
    assert queues.reconcile(db, {"general": limit}, now=NOW) == []  # nothing twice
    assert queues.closed_without_queue_result(db) == {"ended": 0, "expired": 1}


@pytest.mark.slow
def test_under_ivr_serve_a_completed_call_leaves_the_queue_without_the_enqueue_action(server, config, hotline):
    db = Database(config.db_url)
    set_mode(db, "live", reason="agents on shift", actor="test")
    stale_at = NOW - timedelta(hours=3)
    with db.write() as conn:  # a call whose every later request was lost, hours ago
        conn.execute(insert(QueueEntry).values(call_sid="CAstale", queue="general", priority=10, language="en",
                                               status="waiting", enqueued_at=stale_at))
    srv = server(workers=1, IVR_QUEUE_RECONCILE_S="1")

    def status_of(sid):
        with db.read() as conn:
            return conn.execute(select(QueueEntry.status).where(QueueEntry.call_sid == sid)).scalar()

    # Left alone, its 3 h "wait" would send every new caller to the overflow: the timer closes it.
    assert wait_for(lambda: status_of("CAstale") == "expired", 15)
    # The simulated caller presses 0, is enqueued, hears one hold document, then hangs up: Twilio sends the
    # final status callback; here its request for the Enqueue action is lost (never sent).
    caller = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0"])
    call = caller.run()
    assert call.ended == "queued"
    assert wait_for(lambda: status_of(call.call_sid) == "waiting", 15)
    caller.hang_up()
    assert not any("/voice/queue-result" in url for url, _ in call.requests)
    assert wait_for(lambda: status_of(call.call_sid) == "ended", 15), status_of(call.call_sid)
    import requests

    metrics = requests.get(srv.staff_url + "/metrics", timeout=10).text
    assert 'ivr_queue_entries_healed_total{how="ended"} 1.0' in metrics
    assert 'ivr_queue_entries_healed_total{how="expired"} 1.0' in metrics
    log = srv.log_path.read_text()
    assert "queue entry of call CAstale in general closed after" in log
    db.dispose()
