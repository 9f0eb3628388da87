"""Owed callbacks as the agent line works them: claimed by one agent at a time, dialled, retried, closed.

A callback is offered to an agent who has nobody waiting (highest priority, then the caller's original place
in line). The claim is one transaction (SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite's write lock,
taken up front by `Database.write()`, serialises it), so two agents never get the same callback. A claim
whose agent vanished (hung up while offered, or a Dial whose result never came) lapses and is offered again.
Closing a callback (done, unreachable, expired) deletes its full number.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from ivr.core.effects import SMS_JOB
from ivr.store import jobs, sealed
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import Callback, utcnow

OFFER_LAPSES = timedelta(minutes=2)  # an agent hears the offer and presses a key well within this
CALL_LAPSES = timedelta(hours=3)  # a Dial's result that has not come in this long never will
OPEN = ("waiting", "offered", "calling")
ANSWERED = ("completed", "answered")  # Twilio's DialCallStatus when the customer picked up


def get(db: Database, callback_id: int) -> dict | None:
    with db.read() as conn:
        row = conn.execute(select(Callback.__table__).where(Callback.id == callback_id)).first()
    return dict(row._mapping) if row else None


def _ready(now: datetime):
    due = and_(Callback.status == "waiting", or_(Callback.next_try_at.is_(None), Callback.next_try_at <= now))
    lapsed = or_(and_(Callback.status == "offered", Callback.claimed_at < now - OFFER_LAPSES),
                 and_(Callback.status == "calling", Callback.claimed_at < now - CALL_LAPSES))
    return or_(due, lapsed)


ORDER = (Callback.priority.desc(), Callback.requested_at, Callback.id)  # priority, then the original place


def claim_next(db: Database, agent: str, serves: tuple[str, ...] = ()) -> dict | None:
    """Offer the next due callback (of the queues `agent` serves; none: all) to them: it is theirs alone until
    they call, skip, or the offer lapses."""
    query = select(Callback.__table__).order_by(*ORDER).limit(1)
    return _claim(db, agent, query.where(Callback.queue.in_(serves)) if serves else query)


def claim(db: Database, callback_id: int, agent: str) -> dict | None:
    """Claim one particular callback for `agent` (the desk's "call now"); None if it is not free to take."""
    return _claim(db, agent, select(Callback.__table__).where(Callback.id == callback_id))


def _claim(db: Database, agent: str, query) -> dict | None:
    now = utcnow()
    with db.write() as conn:
        row = conn.execute(query.where(_ready(now)).with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        conn.execute(update(Callback).where(Callback.id == row.id)
                     .values(status="offered", claimed_by=agent, claimed_at=now))
    return {**row._mapping, "status": "offered", "claimed_by": agent, "claimed_at": now}


def worklist(db: Database) -> list[dict]:
    """Open callbacks in the order they are offered; due or not, with who holds each."""
    with db.read() as conn:
        rows = conn.execute(select(Callback.__table__).where(Callback.status.in_(OPEN)).order_by(*ORDER)).all()
    return [dict(r._mapping) for r in rows]


def release(db: Database, callback_id: int, agent: str) -> None:
    """The agent passed: the callback is owed as before (no attempt counted)."""
    with db.write() as conn:
        conn.execute(update(Callback).where(Callback.id == callback_id, Callback.claimed_by == agent,
                                            Callback.status == "offered")
                     .values(status="waiting", claimed_by=None, claimed_at=None))


def start_dial(db: Database, callback_id: int, agent: str) -> dict | None:
    """The agent pressed to call: the callback becomes theirs to dial, with its number opened. None if their
    offer lapsed meanwhile; DataKeyError (nothing changed) if the number cannot be opened."""
    now = utcnow()
    with db.write() as conn:
        done = conn.execute(update(Callback).where(Callback.id == callback_id, Callback.claimed_by == agent,
                                                   Callback.status == "offered", Callback.number.is_not(None))
                            .values(status="calling", claimed_at=now)).rowcount
        if not done:
            return None
        row = conn.execute(select(Callback.__table__).where(Callback.id == callback_id)).first()
        number = sealed.open_number(db, row.number)  # DataKeyError: nothing changed, it stays offered
        audit(conn, actor=agent, action="callback.dial", subject=f"callback {callback_id}",
              to_value=f"attempt {row.attempts + 1} to {row.number_masked}")
    return {**row._mapping, "number": number}


def dial_result(db: Database, callback_id: int, agent: str, dial_status: str, *, max_attempts: int,
                retry_minutes: int, sms_job: dict | None = None) -> str | None:
    """Record how a callback's dial ended: 'done', 'retry' or 'unreachable'; None if it was not this agent's
    dial in progress (a repeated request changes nothing). `sms_job`: the job to queue when it is unreachable
    (None when SMS is not set up); its `to` is filled in here, from the number about to be deleted."""
    now = utcnow()
    with db.write() as conn:
        row = conn.execute(select(Callback.number, Callback.attempts).where(
            Callback.id == callback_id, Callback.claimed_by == agent, Callback.status == "calling")
            .with_for_update()).first()
        if row is None:
            return None
        subject = f"callback {callback_id}"
        if dial_status in ANSWERED:
            _close(conn, callback_id, "done", agent, f"answered ({dial_status})", now)
            return "done"
        attempts = row.attempts + 1
        if attempts < max_attempts:
            conn.execute(update(Callback).where(Callback.id == callback_id).values(
                status="waiting", attempts=attempts, claimed_by=None, claimed_at=None,
                next_try_at=now + timedelta(minutes=retry_minutes)))
            audit(conn, actor=agent, action="callback.not_reached", subject=subject,
                  to_value=f"{dial_status}; attempt {attempts} of {max_attempts}, next in {retry_minutes} min")
            return "retry"
        if sms_job is not None and row.number:
            jobs.enqueue(conn, SMS_JOB, {**sms_job, "to": row.number}, dedupe_key=f"callback-unreachable-{callback_id}")
        conn.execute(update(Callback).where(Callback.id == callback_id).values(attempts=attempts))
        _close(conn, callback_id, "unreachable", agent,
               f"{dial_status}; {attempts} attempts" + ("; told by SMS" if sms_job else ""), now)
        return "unreachable"


def _close(conn, callback_id: int, status: str, actor: str, note: str, now: datetime, reason: str = "") -> None:
    conn.execute(update(Callback).where(Callback.id == callback_id).values(
        status=status, number=None, number_hash=None, done_at=now, done_by=actor, claimed_by=None, claimed_at=None))
    sealed.after_removal(conn)
    audit(conn, actor=actor, action=f"callback.{status}", subject=f"callback {callback_id}", to_value=note[:2000],
          reason=reason)


def close_by_hand(db: Database, callback_id: int, *, actor: str, note: str = "", reason: str = "") -> bool:
    """Ops mark an open callback done (called from their own phone, say); its number goes."""
    with db.write() as conn:
        row = conn.execute(select(Callback.id).where(Callback.id == callback_id, Callback.status.in_(OPEN))
                           .with_for_update()).first()
        if row is None:
            return False
        conn.execute(update(Callback).where(Callback.id == callback_id).values(note=note or None))
        _close(conn, callback_id, "done", actor, note or "done", utcnow(), reason)
    return True


def apply_retention(db: Database, days: int) -> dict:
    """What is left of callbacks after `days`: open ones close as expired (their number goes), and closed
    ones lose the voicemail and note. The rest (queue, times, outcome) stays for the reports. A voicemail
    goes at Twilio too (a job: `recordings` says how many were queued), not only our link to it."""
    cutoff = utcnow() - timedelta(days=days)
    with db.write() as conn:
        expired = conn.execute(select(Callback.id).where(Callback.status.in_(OPEN), Callback.requested_at < cutoff)
                               .with_for_update()).scalars().all()
        for callback_id in expired:
            _close(conn, callback_id, "expired", "retention", f"open for more than {days} days", utcnow())
        past = (Callback.status.not_in(OPEN), Callback.done_at < cutoff)
        voicemails = conn.execute(select(Callback.voicemail_url).where(*past, Callback.voicemail_url.is_not(None))
                                  ).scalars().all()
        recordings = sum(jobs.delete_recording_at_twilio(conn, url, "retention", f"voicemail kept {days} days")
                         for url in voicemails)
        scrubbed = conn.execute(update(Callback).where(
            *past, or_(Callback.voicemail_url.is_not(None), Callback.note.is_not(None), Callback.number.is_not(None)))
            .values(voicemail_url=None, note=None, number=None)).rowcount
        sealed.after_removal(conn)
    return {"expired": len(expired), "scrubbed": scrubbed, "recordings": recordings}

