"""Changes planned ahead: a mode switch, a publish or an incident activation, to be carried out at a time.

A planned change is a row of `scheduled_changes`. Scheduling and cancelling are audited here; carrying one
out is ivr/ops/scheduled.py's, in `ivr background`. Of several servers, exactly one carries out each change:
it claims the row in one transaction (pending -> carrying-out, with FOR UPDATE SKIP LOCKED on PostgreSQL and
under BEGIN IMMEDIATE on SQLite), and nobody else can claim a row that is no longer pending. A claim whose
server died before it recorded the outcome is never carried out again (a second publish or switch could
undo what a person did meanwhile): after STALE it is marked failed, with an alert, for a person to check.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from ivr.core.errors import Conflict, NotFound, Refused, Unprocessable
from ivr.store import announcements, incidents
from ivr.store.audit import audit, required_reason
from ivr.store.db import Database
from ivr.store.jobs import new_token
from ivr.store.models import MODES, ScheduledChange, utcnow

KINDS = ("mode", "publish", "activate")
PENDING, CARRYING_OUT, DONE, REFUSED, FAILED, CANCELLED = (
    "pending", "carrying-out", "done", "refused", "failed", "cancelled")
STATUSES = (PENDING, CARRYING_OUT, DONE, REFUSED, FAILED, CANCELLED)
ALERTS = (REFUSED, FAILED)  # outcomes a person must hear about: the dashboard and /metrics show them
STALE = timedelta(minutes=5)  # a claim with no outcome after this: its server died while carrying it out
ALERT_WINDOW = timedelta(hours=24)  # how long the dashboard keeps showing a refused or failed change

COLUMNS = (ScheduledChange.id, ScheduledChange.kind, ScheduledChange.target, ScheduledChange.what,
           ScheduledChange.run_at, ScheduledChange.reason, ScheduledChange.override, ScheduledChange.carry_over,
           ScheduledChange.status, ScheduledChange.created_by, ScheduledChange.created_at,
           ScheduledChange.claimed_by, ScheduledChange.finished_at, ScheduledChange.outcome,
           ScheduledChange.cancelled_by)


class ScheduleRefused(Refused):
    """A change that cannot be scheduled or cancelled as asked; nothing was changed."""


class ScheduledChangeNotFound(ScheduleRefused, NotFound):
    pass


class ScheduleConflict(ScheduleRefused, Conflict):
    pass


class UnusableTime(ScheduleRefused, Unprocessable):
    """A time that has passed, or a date that does not exist."""


def parse_at(text: str, zone: str, now: datetime | None = None) -> datetime:
    """When a change is to run, from ISO 8601 (`2026-12-07T08:00+01:00`, `...Z`); without an offset, the time
    is in the hotline's zone (IVR_TIMEZONE). Refused if it does not parse or is not in the future."""
    text = (text or "").strip()
    try:
        at = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        raise UnusableTime(f"at: {text!r} is not a time: give ISO 8601, e.g. 2026-12-07T08:00 (in {zone}) "
                              "or 2026-12-07T08:00+01:00") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(zone))
    return in_future(at, now)


def in_future(at: datetime, now: datetime | None = None) -> datetime:
    """`at` in UTC, refused if it is not after now."""
    now = now or utcnow()
    try:
        at = at.astimezone(timezone.utc)
    except OverflowError:  # year 1 or 9999 moved across midnight by its offset
        raise UnusableTime(f"at: {at.isoformat()} is out of range") from None
    if at <= now:
        raise UnusableTime(f"at: {at:%Y-%m-%d %H:%M:%S} UTC is in the past (it is now {now:%Y-%m-%d %H:%M:%S} "
                              "UTC): a change can only be scheduled for later; to make it now, make it directly")
    return at


def _what(db: Database, kind: str, target: str) -> str:
    """The change in words, refused if what it names does not exist (or could not be done at any time)."""
    if kind == "mode":
        if target not in MODES:
            raise ScheduleRefused(f"mode: must be one of {', '.join(MODES)}, not {target!r}")
        return f"switch to {target} mode"
    try:
        number = int(target)
    except (TypeError, ValueError):
        raise ScheduleRefused(f"{kind}: {target!r} is not an id") from None
    if kind == "publish":
        try:
            row = announcements.get(db, number)
        except announcements.AnnouncementNotFound as exc:
            raise ScheduledChangeNotFound(str(exc)) from None
        if row["status"] == "published":
            raise ScheduleConflict(f"announcement {number} is published already")
        return f"publish announcement {number} (incident {row['incident_id']} {row['language']}/{row['topic']} " \
               f"v{row['version']})"
    if kind == "activate":
        found = [r for r in incidents.list_incidents(db) if r["id"] == number]
        if not found:
            raise ScheduledChangeNotFound(f"there is no incident {number}")
        return f"activate incident {number} ({found[0]['title']})"[:300]
    raise ScheduleRefused(f"kind: must be one of {', '.join(KINDS)}, not {kind!r}")


def add(db: Database, *, kind: str, target: str, at: datetime, reason: str, actor: str,
        override: str | None = None, carry_over: bool = False, two_person: bool = True) -> dict:
    """Plan a change for `at` (aware; refused unless in the future); audited. Returns its row. With
    `two_person` (two-person publishing), planning a publish asks for a second person's approval now: the
    draft is published at `at` only if someone else approved it by then (ivr/store/approvals.py)."""
    why = required_reason(reason, ScheduleRefused)
    override = (override or "").strip()[:500] or None
    if override and kind == "activate":
        raise ScheduleRefused("override: an activation runs no go-live check, so there is nothing to override")
    if carry_over and kind != "activate":
        raise ScheduleRefused("carry_over: only an incident activation carries announcements over")
    at = in_future(at)
    what = _what(db, kind, str(target))
    with db.write() as conn:
        new_id = conn.execute(insert(ScheduledChange).values(
            kind=kind, target=str(target), what=what, run_at=at, reason=why, override=override,
            carry_over=bool(carry_over), status=PENDING, created_by=actor, created_at=utcnow())).inserted_primary_key[0]
        if kind == "publish" and two_person:
            announcements.ask_approval_once(conn, int(target), actor, why)
        audit(conn, actor=actor, action="schedule.add", subject=f"scheduled change {new_id}",
              to_value=f"{what} at {at:%Y-%m-%d %H:%M:%S} UTC"
                       + (f"; go-live check overridden: {override}" if override else ""), reason=why)
    return get(db, new_id)


def get(db: Database, change_id: int) -> dict:
    with db.read() as conn:
        row = conn.execute(select(*COLUMNS).where(ScheduledChange.id == change_id)).first()
    if row is None:
        raise ScheduledChangeNotFound(f"there is no scheduled change {change_id}")
    return dict(row._mapping)


def list_changes(db: Database, *, include_past: bool = True, limit: int = 100) -> list[dict]:
    """The changes still to come, soonest first, then (with `include_past`) the rest, latest first."""
    with db.read() as conn:
        coming = conn.execute(select(*COLUMNS).where(ScheduledChange.status.in_((PENDING, CARRYING_OUT)))
                              .order_by(ScheduledChange.run_at, ScheduledChange.id).limit(limit)).all()
        past = conn.execute(select(*COLUMNS).where(ScheduledChange.status.not_in((PENDING, CARRYING_OUT)))
                            .order_by(ScheduledChange.run_at.desc(), ScheduledChange.id.desc())
                            .limit(limit)).all() if include_past else []
    return [dict(r._mapping) for r in (*coming, *past)]


def counts(db: Database) -> dict[str, int]:
    """How many changes are in each status: the one count /metrics, the CLI, the API and the console show."""
    with db.read() as conn:
        rows = conn.execute(select(ScheduledChange.status, func.count()).group_by(ScheduledChange.status)).all()
    return {**{status: 0 for status in STATUSES}, **{status: n for status, n in rows}}


def alerts(db: Database, now: datetime | None = None) -> list[dict]:
    """Changes refused or failed at their time in the last day, latest first: what the dashboard warns of."""
    since = (now or utcnow()) - ALERT_WINDOW
    with db.read() as conn:
        rows = conn.execute(select(*COLUMNS).where(ScheduledChange.status.in_(ALERTS),
                                                   ScheduledChange.finished_at >= since)
                            .order_by(ScheduledChange.finished_at.desc())).all()
    return [dict(r._mapping) for r in rows]


def cancel(db: Database, change_id: int, *, actor: str, reason: str) -> dict:
    """Cancel a change that has not run yet; audited."""
    why = required_reason(reason, ScheduleRefused)
    with db.write() as conn:
        row = conn.execute(select(ScheduledChange.status, ScheduledChange.what)
                           .where(ScheduledChange.id == change_id).with_for_update()).first()
        if row is None:
            raise ScheduledChangeNotFound(f"there is no scheduled change {change_id}")
        if row.status != PENDING:
            raise ScheduleConflict(f"scheduled change {change_id} is {row.status}: only a pending one can be cancelled")
        conn.execute(update(ScheduledChange).where(ScheduledChange.id == change_id).values(
            status=CANCELLED, cancelled_by=actor, finished_at=utcnow(), outcome=f"cancelled: {why}"))
        audit(conn, actor=actor, action="schedule.cancel", subject=f"scheduled change {change_id}",
              from_value=row.what, to_value=CANCELLED, reason=why)
    return get(db, change_id)


def _any(db: Database, *where) -> bool:
    """A read first: each server looks every second, and most looks find nothing; on SQLite a write
    transaction would take the database's one write lock each time, in front of the call records' writer."""
    with db.read() as conn:
        return conn.execute(select(ScheduledChange.id).where(*where).limit(1)).first() is not None


def claim_due(db: Database, now: datetime | None = None) -> tuple[dict, str] | None:
    """Take the next change that is due, for this server alone: (row, claim token), or None."""
    now, token = now or utcnow(), new_token()
    if not _any(db, ScheduledChange.status == PENDING, ScheduledChange.run_at <= now):
        return None
    with db.write() as conn:
        row = conn.execute(select(*COLUMNS).where(ScheduledChange.status == PENDING, ScheduledChange.run_at <= now)
                           .order_by(ScheduledChange.run_at, ScheduledChange.id).limit(1)
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        taken = conn.execute(update(ScheduledChange).where(ScheduledChange.id == row.id,
                                                           ScheduledChange.status == PENDING)
                             .values(status=CARRYING_OUT, claimed_by=token, claimed_at=now)).rowcount
    return (dict(row._mapping), token) if taken == 1 else None


def finish(db: Database, change_id: int, token: str, status: str, outcome: str) -> bool:
    """Record what became of a change this server claimed (done, refused or failed); audited."""
    with db.write() as conn:
        done = conn.execute(update(ScheduledChange).where(
            ScheduledChange.id == change_id, ScheduledChange.status == CARRYING_OUT,
            ScheduledChange.claimed_by == token).values(status=status, outcome=outcome[:2000],
                                                        finished_at=utcnow())).rowcount == 1
        if done:
            row = conn.execute(select(ScheduledChange.what, ScheduledChange.created_by)
                               .where(ScheduledChange.id == change_id)).one()
            audit(conn, actor="hotline", action=f"schedule.{status}", subject=f"scheduled change {change_id}",
                  from_value=row.what, to_value=outcome[:2000], reason=f"scheduled by {row.created_by}")
    return done


def abandon_stale(db: Database, now: datetime | None = None) -> list[dict]:
    """Claims with no outcome after STALE (their server died mid-way): failed, audited, never run again."""
    now = now or utcnow()
    outcome = ("interrupted: the server carrying it out stopped before it recorded the outcome; the audit log "
               "says whether the change itself was made")
    if not _any(db, ScheduledChange.status == CARRYING_OUT, ScheduledChange.claimed_at < now - STALE):
        return []
    with db.write() as conn:
        rows = conn.execute(select(ScheduledChange.id, ScheduledChange.what).where(
            ScheduledChange.status == CARRYING_OUT, ScheduledChange.claimed_at < now - STALE)
            .with_for_update(skip_locked=True)).all()
        for row in rows:
            conn.execute(update(ScheduledChange).where(ScheduledChange.id == row.id)
                         .values(status=FAILED, outcome=outcome, finished_at=now))
            audit(conn, actor="hotline", action="schedule.failed", subject=f"scheduled change {row.id}",
                  from_value=row.what, to_value=outcome)
    return [dict(r._mapping) for r in rows]


def when_text(at: datetime | None, zone: str) -> str:
    """A planned time as every surface says it: UTC, and the hotline's own zone beside it when that differs."""
    if at is None:
        return ""
    at = at.astimezone(timezone.utc)
    local = at.astimezone(ZoneInfo(zone))
    return f"{at:%Y-%m-%d %H:%M:%S} UTC" + ("" if zone == "UTC" else f" ({local:%Y-%m-%d %H:%M %Z} {zone})")


def pending_publish(conn: Connection, announcement_id: int) -> datetime | None:
    """When a publish of this announcement is planned (the earliest still pending), or None."""
    return conn.execute(select(func.min(ScheduledChange.run_at)).where(
        ScheduledChange.kind == "publish", ScheduledChange.target == str(announcement_id),
        ScheduledChange.status == PENDING)).scalar()
