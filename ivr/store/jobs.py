"""Background jobs: work that must stay out of the webhooks' path (fetching a phone recording, sending SMS).

A job is a row; a worker claims one at a time (so two workers never run the same job), runs its handler,
and records the result. Failures are retried with backoff, then marked failed with the error.
Workers: a thread in each web worker (IVR_JOBS_IN_APP, the default) and/or `ivr jobs run`.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import timedelta
from typing import Callable

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ivr.store.models import Job, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
STALE_AFTER = timedelta(minutes=10)  # a job "running" this long lost its worker: run it again
HANDLERS: dict[str, Callable] = {}


class PermanentError(Exception):
    """A job that cannot succeed however often it is tried (bad input, a refused host)."""


def handler(kind: str):
    """Register the function that runs jobs of this kind: fn(hotline, payload) -> result dict."""

    def register(fn):
        HANDLERS[kind] = fn
        return fn

    return register


def enqueue(conn: Connection, kind: str, payload: dict, dedupe_key: str | None = None) -> None:
    """Add a job in the caller's transaction; a job with the same dedupe key is added once."""
    values = dict(kind=kind, payload=json.dumps(payload), status="pending", attempts=0, run_after=utcnow(),
                  dedupe_key=dedupe_key, created_at=utcnow(), updated_at=utcnow())
    if dedupe_key is None:
        conn.execute(insert(Job).values(**values))
        return
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(Job.__table__)
    conn.execute(ins.values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))


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


def run_one(hotline) -> bool:
    """Run the next ready job, if any. Returns True if a job was run."""
    job = claim(hotline.db)
    if job is None:
        return False
    job_id, kind, payload, attempt = job
    values: dict
    try:
        fn = HANDLERS.get(kind)
        if fn is None:
            raise PermanentError(f"no handler for jobs of kind {kind!r}")
        result = fn(hotline, payload)
        values = dict(status="done", result=json.dumps(result or {}), last_error=None)
        log.info("job %s (%s) done", job_id, kind)
    except Exception as exc:
        permanent = isinstance(exc, PermanentError) or attempt >= MAX_ATTEMPTS
        values = dict(status="failed" if permanent else "pending", last_error=f"{type(exc).__name__}: {exc}"[:2000],
                      run_after=utcnow() + timedelta(seconds=min(2 ** attempt, 300)))
        log.warning("job %s (%s) attempt %d failed%s: %s", job_id, kind, attempt,
                    " permanently" if permanent else ", will retry", exc)
        if permanent and getattr(fn, "on_failure", None):
            _safely(fn.on_failure, hotline, payload, str(exc))
    scrub = getattr(HANDLERS.get(kind), "scrub", None)
    if scrub and values["status"] in ("done", "failed"):
        values["payload"] = json.dumps(scrub(payload))  # personal data kept no longer than the job needs it
    with hotline.db.write() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))
    return True


def _safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("job failure hook failed")


def job_status(db, job_id: int) -> dict | None:
    with db.read() as conn:
        row = conn.execute(select(Job).where(Job.id == job_id)).scalar_one_or_none()
        return None if row is None else {c.name: getattr(row, c.name) for c in Job.__table__.columns}


class JobWorker:
    """A daemon thread working jobs in this process; started once per process (after gunicorn forks)."""

    def __init__(self, hotline, interval: float = 1.0):
        self.hotline = hotline
        self.interval = interval
        self._pid = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False

    def ensure_started(self) -> None:
        if self._pid == os.getpid() or self._stopped:
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="job-worker", daemon=True).start()

    def poke(self) -> None:
        """Look for work now rather than at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            try:
                while run_one(self.hotline):
                    pass
            except Exception as exc:  # a database outage must not kill the thread
                log.warning("job worker: %s", exc)
            self._wake.wait(self.interval)
            self._wake.clear()
