"""The jobs table: work that must stay out of the webhooks' path (fetching a phone recording, sending SMS).

A job is a row. A runner claims one with a lease (a token of its own and a time it lapses), renews the
lease while the job runs, and may record progress or finish the job only while it still holds that token:
a runner that stalled past its lease cannot overwrite what the runner that took the job over did. Claims
take the row with FOR UPDATE SKIP LOCKED on PostgreSQL and under BEGIN IMMEDIATE on SQLite (Database.write),
so two runners never claim one job at once. Why a table and not a job library: docs/architecture.md.

Who runs them and how: ivr/worker/jobs.py; which kinds exist and what runs each: ivr/worker/handlers.py.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from ivr.core.effects import PHONE_RECORDING_JOB, RECORDING_DELETE_JOB, SMS_JOB, delete_recording
from ivr.core.errors import Refused
from ivr.store.audit import audit
from ivr.store.db import Database, dialect_insert
from ivr.store.models import Job, utcnow
from ivr.store.sealed import MASKED_WITHOUT_KEY, after_removal

KINDS = (SMS_JOB, PHONE_RECORDING_JOB, RECORDING_DELETE_JOB)  # every kind a step can ask for (ivr/core/effects.py)
DEAD = "failed"  # a job failed for good: a dead letter, kept for an operator to read and retry


class LeaseLost(Exception):
    """This runner no longer holds the job: its lease lapsed and another runner took it."""


@dataclass(frozen=True)
class Claim:
    """A job as a runner claimed it: `progress` is what an earlier attempt recorded (record_progress)."""

    id: int
    kind: str
    payload: dict
    attempt: int
    token: str
    progress: dict


def enqueue(conn: Connection, kind: str, payload: dict, dedupe_key: str | None = None,
            after: timedelta = timedelta(0)) -> None:
    """Add a job in the caller's transaction, due `after` from now. A job with the same dedupe key is added
    once; asked for again while it waits, it is due at the sooner of the two times (a recording's deletion
    planned for a week is done now that it was published), its payload unchanged."""
    values = dict(kind=kind, payload=json.dumps(payload), status="pending", attempts=0, run_after=utcnow() + after,
                  dedupe_key=dedupe_key, created_at=utcnow(), updated_at=utcnow())
    if dedupe_key is None:
        conn.execute(insert(Job).values(**values))
        return
    stmt = dialect_insert(conn, Job.__table__).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["dedupe_key"], set_={"run_after": stmt.excluded.run_after},
        where=(Job.__table__.c.status == "pending") & (Job.__table__.c.run_after > stmt.excluded.run_after)))


def delete_recording_at_twilio(conn: Connection, url: str | None, actor: str, why: str) -> bool:
    """Queue, in the caller's transaction, the deletion at Twilio of the recording `url` names, when it is
    one Twilio made (ivr/worker/recording_delete.py). False: nothing there to delete."""
    job = delete_recording(url, actor, why)
    if job is not None:
        enqueue(conn, job.kind, job.payload, job.dedupe_key)
    return job is not None


def new_token() -> str:
    """A lease token: unique per claim, and saying which host and process holds it (for operators)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _ready(now: datetime):
    """Pending and due, or running under a lease that lapsed (its runner died or stalled)."""
    return or_(and_(Job.status == "pending", Job.run_after <= now),
               and_(Job.status == "running", Job.locked_until < now))


def claim(db: Database, lease: timedelta) -> Claim | None:
    """Take the next ready job under a new lease; None when there is nothing to do."""
    now, token = utcnow(), new_token()
    with db.write() as conn:
        row = conn.execute(select(Job.id, Job.kind, Job.payload, Job.attempts, Job.result)
                           .where(_ready(now)).order_by(Job.run_after, Job.id).limit(1)
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        conn.execute(update(Job).where(Job.id == row.id).values(
            status="running", attempts=row.attempts + 1, locked_by=token, locked_until=now + lease, updated_at=now))
    # An earlier attempt's record (result is the final result only once a job is done, and done jobs are
    # never claimed), kept through retries and a dead letter's retry: the text it may have sent
    return Claim(row.id, row.kind, json.loads(row.payload), row.attempts + 1, token, json.loads(row.result or "{}"))


def _held(job_id: int, token: str):
    return and_(Job.id == job_id, Job.status == "running", Job.locked_by == token)


def renew(db: Database, job_id: int, token: str, lease: timedelta) -> bool:
    """Extend this runner's lease; False if it no longer holds the job."""
    with db.write() as conn:
        return conn.execute(update(Job).where(_held(job_id, token))
                            .values(locked_until=utcnow() + lease)).rowcount == 1


def record_progress(db: Database, job_id: int, token: str, progress: dict) -> None:
    """Remember, before and after an outside effect that cannot be undone (a text sent), how far this job
    got, so the runner that takes it over after a crash knows; raises LeaseLost if this runner lost it."""
    with db.write() as conn:
        if conn.execute(update(Job).where(_held(job_id, token))
                        .values(result=json.dumps(progress), updated_at=utcnow())).rowcount != 1:
            raise LeaseLost(f"job {job_id} is no longer held by {token}")


def finish(db: Database, job_id: int, token: str, values: dict) -> bool:
    """Record how this runner's attempt ended (done, failed, or pending again with a later run_after), only
    if it still holds the job; False (and nothing changed) if another runner took it over."""
    with db.write() as conn:
        return conn.execute(update(Job).where(_held(job_id, token)).values(
            updated_at=utcnow(), locked_by=None, locked_until=None, **values)).rowcount == 1


# -- dead letters ----------------------------------------------------------------------------------------
DEAD_COLUMNS = (Job.id, Job.kind, Job.attempts, Job.last_error, Job.created_at, Job.updated_at)


def dead_letters(db: Database, limit: int = 200) -> list[dict]:
    """Jobs that failed for good, newest first (payloads hold personal data: not shown)."""
    with db.read() as conn:
        rows = conn.execute(select(*DEAD_COLUMNS).where(Job.status == DEAD)
                            .order_by(Job.updated_at.desc(), Job.id.desc()).limit(limit)).all()
    return [dict(r._mapping) for r in rows]


def counts(db: Database) -> dict[str, int]:
    """How many jobs are in each status (the console and `ivr jobs dead` say how many are dead)."""
    with db.read() as conn:
        rows = conn.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {"pending": 0, "running": 0, "done": 0, DEAD: 0, **{status: n for status, n in rows}}


SCRUBBED = "scrubbed_after_retention"  # marks a dead letter whose caller's data retention deleted


class NotRetriable(Refused):
    """The job asked for is not a dead letter, or no longer holds what it needs to run."""


def retry_dead(db: Database, job_id: int, *, actor: str, reason: str) -> dict:
    """Put a dead letter back in the queue to run now, its attempts counted afresh; audited."""
    if not reason.strip():
        raise NotRetriable("say why the job is retried (a reason is required)")
    with db.write() as conn:
        row = conn.execute(select(Job.kind, Job.status, Job.last_error, Job.payload).where(Job.id == job_id)
                           .with_for_update()).first()
        if row is None or row.status != DEAD:
            raise NotRetriable(f"job {job_id} is not a dead letter" + (f" (it is {row.status})" if row else ""))
        payload = json.loads(row.payload)
        if SCRUBBED in payload:  # retrying it could only fail again
            raise NotRetriable(f"job {job_id} lost the caller's data after the retention period: it cannot run again")
        if MASKED_WITHOUT_KEY in payload:
            raise NotRetriable(f"job {job_id} was stored with the number masked (there was no usable data key "
                               "when it was made): it cannot run again")
        conn.execute(update(Job).where(Job.id == job_id).values(status="pending", attempts=0, run_after=utcnow(),
                                                                updated_at=utcnow()))
        audit(conn, actor=actor, action="job.retry", subject=f"job {job_id} ({row.kind})",
              from_value=f"dead: {row.last_error or ''}"[:500], to_value="pending", reason=reason)
    return {"id": job_id, "kind": row.kind}


def payload_of(db: Database, job_id: int) -> dict | None:
    with db.read() as conn:
        raw = conn.execute(select(Job.payload).where(Job.id == job_id)).scalar()
    return None if raw is None else json.loads(raw)


def dead_to_scrub(db: Database, cutoff: datetime) -> list[tuple[int, str, dict]]:
    """Dead letters last touched before `cutoff` still holding a caller's data (retention scrubs them)."""
    with db.read() as conn:
        rows = conn.execute(select(Job.id, Job.kind, Job.payload)
                            .where(Job.status == DEAD, Job.updated_at < cutoff)).all()
    return [(r.id, r.kind, payload) for r in rows if SCRUBBED not in (payload := json.loads(r.payload))]


def scrub_dead(db: Database, job_id: int, payload: dict, days: int) -> None:
    """Replace a dead letter's payload with what is left after retention (updated_at unchanged)."""
    with db.write() as conn:
        conn.execute(update(Job).where(Job.id == job_id, Job.status == DEAD)
                     .values(payload=json.dumps({**payload, SCRUBBED: days})))
        after_removal(conn)  # the sealed number's old frames go from SQLite's WAL too
