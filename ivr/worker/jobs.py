"""Working jobs: claim one, run its handler, record the result; failures retried with backoff, then failed.

Where they run: a thread in each web worker (IVR_JOBS_IN_APP), `ivr background` (under `ivr serve`), or
`ivr jobs run`. Every one of them gets its handlers from ivr/worker/handlers.py, so they agree on what
a job of each kind does.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from ivr.store import jobs as jobs_table
from ivr.store import sealed
from ivr.store.models import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
KEY_RETRY = timedelta(minutes=1)  # how soon a job waiting for the data key looks again
PERSONAL_FIELDS = ("to", "number", "from")  # scrubbed from a finished job's payload when its handler says no more


class PermanentError(Exception):
    """A job that cannot succeed however often it is tried (bad input, a refused host)."""


@dataclass(frozen=True)
class JobHandler:
    """What runs a job of one kind: run(hotline, payload) -> result; optionally what to do when it fails for
    good, and what of the payload to keep once the job is over (personal data no longer than needed)."""

    run: Callable[[object, dict], dict]
    on_failure: Callable[[object, dict, str], None] | None = None
    scrub: Callable[[dict], dict] | None = None


def scrub_personal(payload: dict) -> dict:
    """The payload without anything that could identify a caller: for a job nobody knows how to scrub."""
    return {k: v for k, v in payload.items() if k not in PERSONAL_FIELDS}


def run_one(hotline, handlers: dict[str, JobHandler]) -> bool:
    """Run the next ready job, if any. Returns True if a job was run."""
    job = jobs_table.claim(hotline.db)
    if job is None:
        return False
    job_id, kind, payload, attempt = job
    try:
        payload = sealed.open_payload(hotline.db, payload)
    except sealed.DataKeyError as exc:
        waiting_for_key(hotline, job_id, kind, attempt, exc)
        return True
    handler = handlers.get(kind)
    values: dict
    try:
        if handler is None:
            raise PermanentError(f"no handler for jobs of kind {kind!r}")
        result = handler.run(hotline, payload)
        values = dict(status="done", result=json.dumps(result or {}), last_error=None)
        log.info("job %s (%s) done", job_id, kind)
    except Exception as exc:
        permanent = isinstance(exc, PermanentError) or attempt >= MAX_ATTEMPTS
        values = dict(status="failed" if permanent else "pending", last_error=f"{type(exc).__name__}: {exc}"[:2000],
                      run_after=utcnow() + timedelta(seconds=min(2 ** attempt, 300)))
        log.warning("job %s (%s) attempt %d failed%s: %s", job_id, kind, attempt,
                    " permanently" if permanent else ", will retry", exc)
        if permanent and handler and handler.on_failure:
            _safely(handler.on_failure, hotline, payload, str(exc))
    if values["status"] in ("done", "failed"):
        scrub = handler.scrub if handler and handler.scrub else scrub_personal
        values["payload"] = json.dumps(scrub(payload))
    jobs_table.finish(hotline.db, job_id, values)
    if "payload" in values:  # the number is gone from the row: leave no copy in SQLite's WAL either
        sealed.truncate_wal(hotline.db.engine)
    return True


def waiting_for_key(hotline, job_id: int, kind: str, attempt: int, exc: Exception) -> None:
    """A job whose number cannot be opened waits for the data key: pending, not counted as an attempt, with
    the reason in last_error (the console and `ivr jobs` show it), tried again in a minute."""
    log.error("job %s (%s) waits: %s", job_id, kind, exc)
    jobs_table.finish(hotline.db, job_id, dict(status="pending", attempts=attempt - 1, last_error=
                                               f"waiting for the data key: {exc}"[:2000],
                                               run_after=utcnow() + KEY_RETRY))


def _safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("job failure hook failed")


class JobWorker:
    """A daemon thread working jobs in this process; started once per process (after gunicorn forks)."""

    def __init__(self, hotline, handlers: dict[str, JobHandler], interval: float = 1.0):
        self.hotline = hotline
        self.handlers = handlers
        self.interval = interval
        self._pid = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False

    def run_one(self) -> bool:
        """Run the next ready job here and now (ivr jobs run, tests)."""
        return run_one(self.hotline, self.handlers)

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
                while self.run_one():
                    pass
            except Exception as exc:  # a database outage must not kill the thread
                log.warning("job worker: %s", exc)
            self._wake.wait(self.interval)
            self._wake.clear()
