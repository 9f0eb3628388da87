"""Working jobs: claim one under a lease, renew the lease while its handler runs, record the result only
while the lease is still ours; failures retried with capped, jittered exponential back-off, then kept as
dead letters (the console's Jobs page, `ivr jobs dead`, `ivr jobs retry`).

Where they run: a thread in each web worker (IVR_JOBS_IN_APP), `ivr background` (under `ivr serve`), or
`ivr jobs run`. Every one of them gets its handlers from ivr/worker/handlers.py, so they agree on what
a job of each kind does.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from ivr.store import jobs as jobs_table
from ivr.store import sealed
from ivr.store.jobs import Claim, LeaseLost
from ivr.store.models import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
KEY_RETRY = timedelta(minutes=1)  # how soon a job waiting for the data key looks again
LEASE = timedelta(seconds=60)  # a claimed job is its runner's this long; renewed every third of it
BACKOFF_FIRST_S, BACKOFF_CAP_S = 2.0, 300.0
PERSONAL_FIELDS = ("to", "number", "from")  # scrubbed from a finished job's payload when its handler says no more


class PermanentError(Exception):
    """A job that cannot succeed however often it is tried (bad input, a refused host)."""


@dataclass(frozen=True)
class JobHandler:
    """What runs a job of one kind: run(hotline, payload, job) -> result, where `job` is the RunningJob
    (what an earlier attempt recorded, and a way to record progress); optionally what to do when it fails
    for good, and what of the payload to keep once the job is over (personal data no longer than needed)."""

    run: Callable[[object, dict, "RunningJob"], dict]
    on_failure: Callable[[object, dict, str], None] | None = None
    scrub: Callable[[dict], dict] | None = None


def scrub_personal(payload: dict) -> dict:
    """The payload without anything that could identify a caller: for a job nobody knows how to scrub."""
    return {k: v for k, v in payload.items() if k not in PERSONAL_FIELDS}


def retry_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempt` failed: doubling from 2 s, capped at 5 minutes, half of
    it random ("equal jitter"), so jobs that failed together (Twilio down) do not all come back together."""
    step = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
    return step / 2 + rand() * step / 2


class RunningJob:
    """A job this runner holds: its lease is renewed in a thread while the handler runs."""

    def __init__(self, db, claim: Claim, lease: timedelta):
        self.db, self.claim, self.lease = db, claim, lease
        self.lost = threading.Event()  # set when a renewal found the job taken over

    @property
    def progress(self) -> dict:
        """What an earlier attempt of this job recorded before it was cut short ({} for a first attempt)."""
        return self.claim.progress

    def record(self, progress: dict) -> None:
        """Record how far the job got (before and after an outside effect); raises LeaseLost if it is
        no longer ours, so a runner that stalled past its lease stops before doing the effect again."""
        jobs_table.record_progress(self.db, self.claim.id, self.claim.token, progress)

    @contextmanager
    def renewing(self):
        stop = threading.Event()

        def renew():
            while not stop.wait(self.lease.total_seconds() / 3):
                try:
                    if not jobs_table.renew(self.db, self.claim.id, self.claim.token, self.lease):
                        log.warning("job %s: lease lost to another runner", self.claim.id)
                        self.lost.set()
                        return
                except Exception as exc:  # the database away for a moment: the lease may still hold
                    log.warning("job %s: could not renew its lease: %s", self.claim.id, exc)

        thread = threading.Thread(target=renew, name=f"job-{self.claim.id}-lease", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


def run_one(hotline, handlers: dict[str, JobHandler], lease: timedelta = LEASE) -> bool:
    """Run the next ready job, if any. Returns True if a job was claimed."""
    claim = jobs_table.claim(hotline.db, lease)
    if claim is None:
        return False
    try:
        payload = sealed.open_payload(hotline.db, claim.payload)
    except sealed.DataKeyError as exc:
        waiting_for_key(hotline, claim, exc)
        return True
    handler = handlers.get(claim.kind)
    job = RunningJob(hotline.db, claim, lease)
    try:
        if handler is None:
            raise PermanentError(f"no handler for jobs of kind {claim.kind!r}")
        with job.renewing():
            result = handler.run(hotline, payload, job)
        values = dict(status="done", result=json.dumps(result or {}), last_error=None)
    except LeaseLost as exc:
        log.warning("job %s (%s): %s; its new runner finishes it", claim.id, claim.kind, exc)
        return True
    except Exception as exc:
        values = _failed(hotline, claim, payload, handler, exc)
    if values["status"] == "done" or handler is None:  # a dead letter keeps its payload to be retried
        scrub = handler.scrub if handler and handler.scrub else scrub_personal
        values["payload"] = json.dumps(scrub(payload))
    if jobs_table.finish(hotline.db, claim.id, claim.token, values):
        log.info("job %s (%s) attempt %d: %s", claim.id, claim.kind, claim.attempt, values["status"])
        if "payload" in values:  # the number is gone from the row: leave no copy in SQLite's WAL either
            sealed.truncate_wal(hotline.db.engine)
    else:
        log.warning("job %s (%s) attempt %d ended after its lease was taken over: its result is dropped",
                    claim.id, claim.kind, claim.attempt)
    return True


def waiting_for_key(hotline, claim: Claim, exc: Exception) -> None:
    """A job whose number cannot be opened waits for the data key: pending, not counted as an attempt, with
    the reason in last_error (the console and `ivr jobs` show it), tried again in a minute."""
    log.error("job %s (%s) waits: %s", claim.id, claim.kind, exc)
    jobs_table.finish(hotline.db, claim.id, claim.token, dict(
        status="pending", attempts=claim.attempt - 1, last_error=f"waiting for the data key: {exc}"[:2000],
        run_after=utcnow() + KEY_RETRY))


def _failed(hotline, claim: Claim, payload: dict, handler: JobHandler | None, exc: Exception) -> dict:
    permanent = isinstance(exc, PermanentError) or claim.attempt >= MAX_ATTEMPTS
    log.warning("job %s (%s) attempt %d failed%s: %s", claim.id, claim.kind, claim.attempt,
                " for good (dead letter)" if permanent else ", will retry", exc)
    if permanent and handler and handler.on_failure:
        _safely(handler.on_failure, hotline, payload, str(exc))
    return dict(status=jobs_table.DEAD if permanent else "pending", last_error=f"{type(exc).__name__}: {exc}"[:2000],
                run_after=utcnow() + timedelta(seconds=retry_delay(claim.attempt)))


def _safely(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("job failure hook failed")


class JobWorker:
    """A daemon thread working jobs in this process; started once per process (after gunicorn forks)."""

    def __init__(self, hotline, handlers: dict[str, JobHandler], interval: float = 1.0, lease: timedelta = LEASE):
        self.hotline = hotline
        self.handlers = handlers
        self.interval = interval
        self.lease = lease
        self._pid = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = False

    def run_one(self) -> bool:
        """Run the next ready job here and now (ivr jobs run, tests)."""
        return run_one(self.hotline, self.handlers, self.lease)

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
