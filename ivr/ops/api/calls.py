"""Call records, a page at a time or a whole range streamed as NDJSON; and the hotline at a glance."""
from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import datetime, timedelta

from flask import Response, g, jsonify

from ivr.ops import reports
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.errors import ApiError
from ivr.ops.api.wire import timestamp
from ivr.store import call_records, queues, reads
from ivr.store.call_records import CallRecord
from ivr.store.models import utcnow

log = logging.getLogger(__name__)
EXPORT_BATCH = 1000  # calls per transaction in a streamed export: one batch is all it holds in memory


def wire(c: CallRecord) -> dict:
    """One call on the wire (the document's Call): numbers only ever masked."""
    return {"call_sid": c.call_sid, "started_at": timestamp(c.started_at), "caller_masked": c.caller_masked,
            "language": c.language, "mode": c.mode, "outcome": c.outcome, "status": c.status,
            "duration_s": c.duration_s, "incident_severity": c.severity, "sms_reference": c.sms_reference,
            "path": [{"kind": s.kind, "digits": s.digits, "detail": s.detail} for s in c.steps]}


def encode_cursor(position: tuple[datetime, str]) -> str:
    """Where the next page starts, opaque to clients (they hand it back as they got it)."""
    started_at, sid = position
    return base64.urlsafe_b64encode(json.dumps([timestamp(started_at), sid]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    bad = ApiError(400, "cursor: not a cursor this API gave out (pass next_cursor back as it came)")
    try:
        started_at, sid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(started_at, str) and isinstance(sid, str) and 0 < len(sid) <= 64):
            raise ValueError
        return reports.moment(started_at, "cursor"), sid
    except (ValueError, TypeError, binascii.Error, reports.ReportError):  # JSONDecodeError is a ValueError
        raise bad from None


def _range() -> tuple[datetime | None, datetime | None]:
    """[from, to) from the query: RFC 3339 dates (UTC midnight) or times with their offsets."""
    start, end = (reports.moment(g.query[k], k) if k in g.query else None for k in ("from", "to"))
    if start and end and end < start:
        raise ApiError(400, "to: the range ends before it starts")
    return start, end


@bp.get("/calls")
@requires("see the hotline")
def calls_list():
    """Calls started in [from, to), newest first, `limit` at a time; `next_cursor` fetches the next page, and
    is null on the last."""
    start, end = _range()
    after = decode_cursor(g.query["cursor"]) if "cursor" in g.query else None
    limit = g.query.get("limit", 50)
    with hotline().db.read() as conn:
        records = call_records.page(conn, since=start, until=end, limit=limit + 1, after=after)
    more = len(records) > limit  # one more than asked for: a full last page says so, not an empty next one
    records = records[:limit]
    return jsonify(calls=[wire(c) for c in records],
                   next_cursor=encode_cursor(records[-1].position) if more else None)


@bp.get("/calls/export")
@requires("see the hotline")
def calls_export():
    """Every call started in [from, to), newest first, one JSON object a line (NDJSON), streamed a batch at a
    time. A failure part way ends the response without its last chunk, so a client sees it cut short."""
    start, end = _range()
    db = hotline().db

    def lines():
        try:
            for c in call_records.every(db, since=start, until=end, batch=EXPORT_BATCH):
                yield json.dumps(wire(c), separators=(",", ":")) + "\n"
        except Exception:
            log.exception("API: the calls export failed part way")
            raise

    return Response(lines(), mimetype="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="calls.ndjson"'})


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
