"""Recent calls with their path through the menu, and the hotline at a glance."""
from __future__ import annotations

from datetime import timedelta

from flask import g, jsonify
from sqlalchemy import select

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import jsonable
from ivr.store import queues, reads
from ivr.store.models import Call, utcnow


@bp.get("/calls")
@requires("see the hotline")
def calls_list():
    """Recent calls, newest first, each with its steps in the order they happened (numbers are only ever
    stored masked)."""
    with hotline().db.read() as conn:
        rows = conn.execute(select(Call.call_sid, Call.started_at, Call.caller_masked, Call.language, Call.mode,
                                   Call.outcome, Call.status, Call.duration_s)
                            .order_by(Call.started_at.desc()).limit(g.query.get("limit", 50))).all()
        steps = reads.call_steps(conn, [r.call_sid for r in rows])
    return jsonify(calls=[{**jsonable(dict(r._mapping)),
                           "path": [{"kind": s.kind, "digits": s.digits, "detail": s.detail} for s in steps[r.call_sid]]}
                          for r in rows])


@bp.get("/stats")
@requires("see the hotline")
def stats():
    """The hotline at a glance: mode, calls, outcomes, queues and callbacks."""
    h = hotline()
    snap = h.state.current()
    now = utcnow()
    with h.db.read() as conn:
        in_progress, last_hour = reads.call_counts(conn, now)
        outcomes = reads.outcomes_since(conn, now - timedelta(hours=24))
        waiting = reads.callbacks_waiting(conn)
    queue_stats = queues.queue_stats(h.db, cached=False)
    return jsonify(
        mode=snap.mode, incident={"id": snap.content.incident_id, "title": snap.content.incident_title,
                                  "severity": snap.content.severity},
        calls_last_hour=last_hour, calls_in_progress=in_progress,
        outcomes_last_24h=outcomes,
        queues={name: {"waiting": queue_stats[name].waiting if name in queue_stats else 0,
                       "longest_wait_s": queue_stats[name].longest_wait_s if name in queue_stats else 0}
                for name in h.rules.rules.queues},
        callbacks_waiting=waiting,
    )
