"""The console's smaller promises: what an expired session keeps, who a stale tab blames, one vocabulary for
agent states, languages and outcomes, and no server paths shown to a viewer."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from ivr.store import queues
from ivr.store.models import ConsoleSession, utcnow
from test_console import PASSWORD, as_role, page, users  # noqa: F401  (fixtures)


def test_a_mark_done_sent_after_the_session_expired_is_not_made_and_its_reason_comes_back(as_role, hotline):
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+12025550111", language="en",
                            queue="general", priority=10, reason="callback offered")
    cb = queues.callbacks(hotline.db)[0]["id"]
    ops = as_role("ops")
    with hotline.db.write() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = ops.post(f"/console/callbacks/{cb}/done", {"note": "spoke to her, card cancelled",
                                                      "reason": "called back at 10:05"})
    assert resp.status_code == 303 and "was not done: nothing was changed" in page(ops.get(resp.headers["Location"]))
    assert [c["id"] for c in queues.callbacks(hotline.db, "waiting")] == [cb]
    resp = ops.client.post("/console/login", data={"name": "otto", "password": PASSWORD, "csrf_token": ops.token(),
                                                   "next": "/console/callbacks"})
    assert resp.status_code == 303
    body = page(ops.get(resp.headers["Location"]))
    assert f"Callback {cb} was not marked done: your session had expired" in body
    assert 'value="spoke to her, card cancelled"' in body and 'value="called back at 10:05"' in body
    assert [c["id"] for c in queues.callbacks(hotline.db, "waiting")] == [cb]  # still not done: they decide
    again = page(ops.get("/console/callbacks"))
    assert "was not marked done" not in again and "called back at 10:05" not in again  # offered once
