"""Call records for export (the API's /api/calls and its NDJSON form, the console's calls.csv): every call in a
time range, a page at a time, each with its masked number, its path through the menu and the reference it was
texted.

Pages are read by keyset, newest first on (started_at, call_sid), which is unique: a page starts strictly
after the last record of the one before, so a call is in exactly one page however many calls arrive while a
client pages, and no page costs more than its own rows (no OFFSET). Each page is one short transaction, so an
export of a whole day holds one page in memory and never a long read lock.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ivr.store.db import Database
from ivr.store.models import Call, Incident
from ivr.store.reads import call_steps, describe_step

WITHHELD = "withheld"  # the sms step's detail when the caller's number was hidden: nothing was texted


@dataclass(frozen=True)
class CallRecord:
    call_sid: str
    started_at: datetime
    caller_masked: str | None  # the number is never stored whole
    language: str | None
    mode: str | None
    outcome: str | None
    status: str | None
    duration_s: int | None
    severity: str | None  # of the incident the call heard about
    sms_reference: str | None  # the reference texted to the caller (key 4), if any
    steps: tuple  # (kind, digits, detail) rows in the order they happened

    @property
    def position(self) -> tuple[datetime, str]:
        """Where the next page starts (exclusive)."""
        return self.started_at, self.call_sid

    def path_in_words(self) -> list[str]:
        return [describe_step(s.kind, s.detail, s.digits) for s in self.steps]


def sms_reference(steps) -> str | None:
    """The reference the call was texted: the detail of its `sms` step (ivr/core/flow.py `_sms`)."""
    for s in steps:
        if s.kind == "sms" and s.detail and s.detail != WITHHELD:
            return s.detail
    return None


def page(conn: Connection, *, since: datetime | None = None, until: datetime | None = None, limit: int,
         after: tuple[datetime, str] | None = None) -> list[CallRecord]:
    """Up to `limit` calls started in [since, until), newest first, from just after `after` on."""
    query = (select(Call.call_sid, Call.started_at, Call.caller_masked, Call.language, Call.mode, Call.outcome,
                    Call.status, Call.duration_s, Incident.severity)
             .outerjoin(Incident, Incident.id == Call.incident_id))
    if since:
        query = query.where(Call.started_at >= since)
    if until:
        query = query.where(Call.started_at < until)
    if after:  # the first condition alone is one the started_at index can seek to: without it a page would
        # scan every newer call of the range and discard it (a day's export grew with the square of its size)
        query = query.where(Call.started_at <= after[0],
                            (Call.started_at < after[0]) | ((Call.started_at == after[0]) & (Call.call_sid < after[1])))
    rows = conn.execute(query.order_by(Call.started_at.desc(), Call.call_sid.desc()).limit(limit)).all()
    steps = call_steps(conn, [r.call_sid for r in rows])
    return [CallRecord(r.call_sid, r.started_at, r.caller_masked, r.language, r.mode, r.outcome, r.status,
                       r.duration_s, r.severity, sms_reference(steps[r.call_sid]), tuple(steps[r.call_sid]))
            for r in rows]


def every(db: Database, *, since: datetime | None = None, until: datetime | None = None,
          batch: int = 500) -> Iterator[CallRecord]:
    """Every call in the range, newest first, a page (and one short transaction) at a time."""
    after = None
    while True:
        with db.read() as conn:
            records = page(conn, since=since, until=until, limit=batch, after=after)
        yield from records
        if len(records) < batch:
            return
        after = records[-1].position
