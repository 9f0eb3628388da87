"""Calls: recent calls, their path through the menu and how they ended; a CSV timeline for the regulator."""
from __future__ import annotations

from collections.abc import Iterator

from flask import render_template, request

from ivr.ops.console.base import FormError, bp, hotline, needs
from ivr.ops.console.export import date_range, filtered_csv
from ivr.store import call_records
from ivr.store.db import Database

SHOWN = 200
HEADER = ["started_at", "call_sid", "caller_masked", "incident_severity", "outcome", "status", "language",
          "duration_s", "sms_reference", "path"]


def _timeline(db: Database, start, end) -> Iterator[list]:
    """Every call in the range, newest first, streamed a page at a time (call_records.every)."""
    for c in call_records.every(db, since=start, until=end):
        yield [c.started_at, c.call_sid, c.caller_masked, c.severity, c.outcome, c.status, c.language,
               c.duration_s, c.sms_reference, " > ".join(c.path_in_words())]


@bp.get("/calls")
@needs("see the hotline")
def calls():
    error, rows = None, []
    try:
        start, end = date_range(request.args)
    except FormError as exc:
        error = f"{exc}."
    else:
        with hotline().db.read() as conn:
            rows = call_records.page(conn, since=start, until=end, limit=SHOWN)
    return render_template("console/calls.html", rows=rows, shown=SHOWN, args=request.args,
                           error=error), (400 if error else 200)


@bp.get("/calls.csv")
@needs("see the hotline")
def calls_csv():
    return filtered_csv("calls-timeline.csv", HEADER, lambda args: _timeline(hotline().db, *date_range(args)))
