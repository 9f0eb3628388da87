"""Recent calls with their path through the menu, and the hotline at a glance."""
from __future__ import annotations

from datetime import timedelta

from flask import g, jsonify
from sqlalchemy import func, select

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.core.call_status import TERMINAL
from ivr.ops.api.wire import jsonable
from ivr.store import queues
from ivr.store.models import Call, CallEvent, utcnow


@bp.get("/calls")
@requires("viewer")
def calls_list():
    """Recent calls, newest first, each with its steps in the order they happened (numbers are only ever
    stored masked)."""
    with hotline().db.read() as conn:
        rows = conn.execute(select(Call.call_sid, Call.started_at, Call.caller_masked, Call.language, Call.mode,
                                   Call.outcome, Call.status, Call.duration_s)
                            .order_by(Call.started_at.desc()).limit(g.query.get("limit", 50))).all()
        sids = [r.call_sid for r in rows]
        # Rows are written in batches, not in step order: a call's steps go by when they happened.
        steps = conn.execute(select(CallEvent.call_sid, CallEvent.kind, CallEvent.digits, CallEvent.detail)
                             .where(CallEvent.call_sid.in_(sids))
                             .order_by(CallEvent.at, CallEvent.id)).all() if sids else []
    path: dict[str, list] = {}
    for s in steps:
        path.setdefault(s.call_sid, []).append({"kind": s.kind, "digits": s.digits, "detail": s.detail})
    return jsonify(calls=[{**jsonable(dict(r._mapping)), "path": path.get(r.call_sid, [])} for r in rows])


@bp.get("/stats")
@requires("viewer")
def stats():
    """The hotline at a glance: mode, calls, outcomes, queues and callbacks."""
    h = hotline()
    snap = h.state.current()
    now = utcnow()
    with h.db.read() as conn:
        last_hour = conn.execute(select(func.count()).select_from(Call)
                                 .where(Call.started_at >= now - timedelta(hours=1))).scalar()
        in_progress = conn.execute(select(func.count()).select_from(Call).where(
            Call.started_at >= now - timedelta(hours=2), Call.status.is_(None) | Call.status.notin_(TERMINAL))
        ).scalar()
        outcomes = conn.execute(select(func.coalesce(Call.outcome, "unknown"), func.count())
                                .where(Call.started_at >= now - timedelta(hours=24)).group_by(Call.outcome)).all()
    queue_stats = queues.queue_stats(h.db, cached=False)
    return jsonify(
        mode=snap.mode, incident={"id": snap.content.incident_id, "title": snap.content.incident_title,
                                  "severity": snap.content.severity},
        calls_last_hour=last_hour, calls_in_progress=in_progress,
        outcomes_last_24h={o: n for o, n in outcomes},
        queues={name: {"waiting": queue_stats[name].waiting if name in queue_stats else 0,
                       "longest_wait_s": queue_stats[name].longest_wait_s if name in queue_stats else 0}
                for name in h.rules.rules.queues},
        callbacks_waiting=len(queues.callbacks(h.db)),
    )
