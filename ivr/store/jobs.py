"""The jobs table: work that must stay out of the webhooks' path (fetching a phone recording, sending SMS).

A job is a row; a worker claims one at a time (so two workers never run the same job). Who runs them and
how: ivr/worker/jobs.py; which kinds exist and what runs each: ivr/worker/handlers.py.
"""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Connection, insert, or_, select, update

from ivr.core.effects import PHONE_RECORDING_JOB, SMS_JOB
from ivr.store.db import dialect_insert
from ivr.store.models import Job, utcnow

STALE_AFTER = timedelta(minutes=10)  # a job "running" this long lost its worker: run it again

KINDS = (SMS_JOB, PHONE_RECORDING_JOB)  # every kind a step can ask for (ivr/core/effects.py)


def enqueue(conn: Connection, kind: str, payload: dict, dedupe_key: str | None = None) -> None:
    """Add a job in the caller's transaction; a job with the same dedupe key is added once."""
    values = dict(kind=kind, payload=json.dumps(payload), status="pending", attempts=0, run_after=utcnow(),
                  dedupe_key=dedupe_key, created_at=utcnow(), updated_at=utcnow())
    if dedupe_key is None:
        conn.execute(insert(Job).values(**values))
        return
    conn.execute(dialect_insert(conn, Job.__table__).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))


def claim(db) -> tuple[int, str, dict, int] | None:
    """Take the next ready job, marking it running; None when there is nothing to do."""
    now = utcnow()
    with db.write() as conn:
        ready = or_(Job.status == "pending", (Job.status == "running") & (Job.updated_at < now - STALE_AFTER))
        row = conn.execute(select(Job.id, Job.kind, Job.payload, Job.attempts)
                           .where(ready, Job.run_after <= now).order_by(Job.id).limit(1)
                           .with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        conn.execute(update(Job).where(Job.id == row.id)
                     .values(status="running", attempts=row.attempts + 1, updated_at=now))
    return row.id, row.kind, json.loads(row.payload), row.attempts + 1


def finish(db, job_id: int, values: dict) -> None:
    """Record how a job's attempt ended (done, failed, or pending again with a later run_after)."""
    with db.write() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))
