"""Calls: recent calls, their path through the menu and how they ended; a CSV timeline for the regulator."""
from __future__ import annotations

from collections.abc import Iterator

from flask import render_template, request

from ivr.store import reads as queries
from ivr.ops.console.base import FormError, bp, hotline, needs
from ivr.ops.console.export import date_range, filtered_csv
from ivr.store.db import Database

SHOWN = 200
BATCH = 500
HEADER = ["started_at", "call_sid", "incident_severity", "outcome", "status", "language", "duration_s", "path"]


def _timeline(db: Database, start, end) -> Iterator[list]:
    """Every call in the range, newest first, a batch (and one short transaction) at a time."""
    before = None
    while True:
        with db.read() as conn:
            calls = queries.recent_calls(conn, since=start, until=end, limit=BATCH, before=before)
            paths = queries.call_paths(conn, [c.call_sid for c in calls])
        for c in calls:
            yield [c.started_at, c.call_sid, c.severity, c.outcome, c.status, c.language, c.duration_s,
                   " > ".join(paths[c.call_sid])]
        if len(calls) < BATCH:
            return
        before = (calls[-1].started_at, calls[-1].call_sid)


@bp.get("/calls")
@needs("see the hotline")
def calls():
    error, rows, paths = None, [], {}
    try:
        start, end = date_range(request.args)
    except FormError as exc:
        error = f"{exc}."
    else:
        with hotline().db.read() as conn:
            rows = queries.recent_calls(conn, since=start, until=end, limit=SHOWN)
            paths = queries.call_paths(conn, [r.call_sid for r in rows])
    return render_template("console/calls.html", rows=rows, paths=paths, shown=SHOWN, args=request.args,
                           error=error), (400 if error else 200)


@bp.get("/calls.csv")
@needs("see the hotline")
def calls_csv():
    return filtered_csv("calls-timeline.csv", HEADER, lambda args: _timeline(hotline().db, *date_range(args)))
