"""Reports for the regulator and the call centre: calls and callbacks by outcome, wrap-up code, language and
queue, per hour or day; service level, abandonment, and callbacks kept within the promised time.

One function builds the figures (`build`); the console page, `ivr report` and `GET /api/reports` all show
it, as charts, CSV or JSON.
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from ivr.core.errors import Refused
from ivr.store.db import Database
from ivr.store.models import Call, Callback, QueueEntry, WrapUp
from ivr.store.supervisor import ANSWERED_WITHIN_S, service

BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}


class ReportError(Refused):
    """A report request that cannot be answered as asked (a bad date or bucket)."""


MAX_SPAN = 99_999  # hours or days back: "since" in the OpenAPI document allows five digits, and so do we
_SPAN = re.compile(r"([0-9]+)([hd])")
# RFC 3339 (the document's `format: date` and `format: date-time`): a date, or a time with its offset.
_MOMENT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
                     r"(?:[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|([+-])([0-9]{2}):([0-9]{2})))?")
_UTC_MIN, _UTC_MAX = datetime.min.replace(tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc)


def parse_since(text: str | None, now: datetime | None = None) -> datetime:
    """A span back from now (24h, 7d; at most MAX_SPAN), a date (UTC midnight) or an RFC 3339 time with its
    offset: exactly what the OpenAPI document allows. None: 24h. Anything else is a ReportError (a 400),
    never an OverflowError; a moment outside what a datetime holds in UTC is its first or last moment."""
    now = now or datetime.now(timezone.utc)
    text = "24h" if text is None else text
    span = _SPAN.fullmatch(text)
    if span:
        count = int(span[1])
        if count > MAX_SPAN:
            raise ReportError(f"since: a span goes back at most {MAX_SPAN:,}h or {MAX_SPAN:,}d (got {text!r})")
        return now - (timedelta(hours=count) if span[2] == "h" else timedelta(days=count))
    return moment(text, "since", " or a span like 24h or 7d")


def moment(text: str, field: str, or_else: str = "") -> datetime:
    """An RFC 3339 date (UTC midnight) or time with its offset, in UTC; a ReportError naming `field` otherwise."""
    found = _MOMENT.fullmatch(text)
    try:
        if found is None:
            raise ValueError
        return _moment(found)
    except ValueError:
        raise ReportError(f"{field} must be an ISO date (2026-12-01), an ISO time with its offset "
                          f"(2026-12-01T08:00:00Z){or_else} (got {text[:60]!r})") from None


def _moment(m: re.Match) -> datetime:
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if year == 0:  # RFC 3339 has a year 0; a datetime starts at year 1
        return _UTC_MIN
    if m[4] is None:
        return datetime(year, month, day, tzinfo=timezone.utc)
    hour, minute, second = int(m[4]), int(m[5]), min(int(m[6]), 59)  # a leap second counts as :59
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    zone = timezone.utc
    if m[9]:
        hours, minutes = int(m[10]), int(m[11])
        if hours > 23 or minutes > 59:
            raise ValueError
        zone = timezone((-1 if m[9] == "-" else 1) * timedelta(hours=hours, minutes=minutes))
    when = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first moment a datetime holds in UTC
        return _UTC_MIN if year == 1 else _UTC_MAX


def _floor(ts: datetime, bucket: str) -> str:
    start = ts.replace(minute=0, second=0, microsecond=0)
    return (start if bucket == "hour" else start.replace(hour=0)).isoformat()


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def build(db: Database, *, since: datetime, until: datetime | None = None, bucket: str = "hour",
          answered_within_s: int = ANSWERED_WITHIN_S, promised_hours: int = 24) -> dict:
    if bucket not in BUCKETS:
        raise ReportError(f"bucket must be one of {', '.join(BUCKETS)}")
    # A since still to come is an empty window, not an error: the document cannot say "not in the future".
    until = max(until or datetime.now(timezone.utc), since)
    with db.read() as conn:
        calls = conn.execute(select(Call.started_at, Call.outcome, Call.language)
                             .where(Call.started_at >= since, Call.started_at < until)).all()
        queued = conn.execute(select(QueueEntry.enqueued_at, QueueEntry.queue, QueueEntry.language,
                                     QueueEntry.status, QueueEntry.wait_s)
                              .where(QueueEntry.enqueued_at >= since, QueueEntry.enqueued_at < until)).all()
        wraps = conn.execute(select(WrapUp.created_at, WrapUp.code, WrapUp.queue, WrapUp.language)
                             .where(WrapUp.created_at >= since, WrapUp.created_at < until)).all()
        owed = conn.execute(select(Callback.requested_at, Callback.done_at, Callback.status, Callback.queue,
                                   Callback.language)
                            .where(Callback.requested_at >= since, Callback.requested_at < until)).all()
    served = service(queued, answered_within_s)  # the dashboard's definition (ivr/store/supervisor.py)
    promise = timedelta(hours=promised_hours)
    kept = [c for c in owed if c.status == "done" and c.done_at and c.done_at - c.requested_at <= promise]
    due = [c for c in owed if c.status != "waiting" or c.requested_at + promise <= until]
    series: dict[str, Counter] = {}
    for kind, rows, at in (("calls", calls, "started_at"), ("queued", queued, "enqueued_at"),
                           ("wrap_ups", wraps, "created_at"), ("callbacks", owed, "requested_at")):
        for r in rows:
            series.setdefault(_floor(getattr(r, at), bucket), Counter())[kind] += 1
    for q in queued:
        if q.status in ("bridged", "hangup"):
            series[_floor(q.enqueued_at, bucket)]["answered" if q.status == "bridged" else "abandoned"] += 1
    return {
        "since": since.isoformat(), "until": until.isoformat(), "bucket": bucket,
        "calls": {"total": len(calls), "by_outcome": dict(Counter(c.outcome or "unknown" for c in calls)),
                  "by_language": dict(Counter(c.language or "unknown" for c in calls))},
        "queues": {"by_queue": {name: dict(Counter(q.status for q in queued if q.queue == name))
                                for name in sorted({q.queue for q in queued})},
                   "by_language": dict(Counter(q.language or "unknown" for q in queued))},
        "service_level": {"answered_within_s": answered_within_s, "answered": served.answered,
                          "within": served.within, "share": served.service_level},
        "abandonment": {"ended": served.ended, "abandoned": served.abandoned, "share": served.abandonment},
        "wrap_ups": {"total": len(wraps), "by_code": dict(Counter(w.code for w in wraps)),
                     "by_queue": dict(Counter(w.queue or "none" for w in wraps)),
                     "by_language": dict(Counter(w.language or "unknown" for w in wraps))},
        "callbacks": {"total": len(owed), "by_status": dict(Counter(c.status for c in owed)),
                      "by_queue": dict(Counter(c.queue for c in owed)),
                      "promised_hours": promised_hours, "due": len(due), "kept": len(kept),
                      "kept_share": _share(len(kept), len(due))},
        "series": [{"start": start, **{k: counts.get(k, 0) for k in
                                       ("calls", "queued", "answered", "abandoned", "wrap_ups", "callbacks")}}
                   for start, counts in sorted(series.items())],
    }


def to_csv(report: dict) -> str:
    """One table, section/name/value, so a spreadsheet can pivot it; the series rows name their hour or day."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "name", "value"])
    for section in ("calls", "queues", "service_level", "abandonment", "wrap_ups", "callbacks"):
        for key, value in report[section].items():
            if isinstance(value, dict):
                for name, inner in value.items():
                    writer.writerow([f"{section}.{key}", name, _cell(inner)])
            else:
                writer.writerow([section, key, _cell(value)])
    for row in report["series"]:
        for key, value in row.items():
            if key != "start":
                writer.writerow([f"{report['bucket']} {row['start']}", key, value])
    return out.getvalue()


def _cell(value) -> str:
    if isinstance(value, dict):  # a queue's statuses
        return " ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return "" if value is None else str(value)
