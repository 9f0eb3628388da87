"""What the spool writer (`ivr background`) tells the probes: one process writes it, every web worker reads it.

Two files in the spool folder, so that every worker of every pool gives the same answer:
- `writer.alive`: touched every second by a thread of its own, whatever the writing does. Its age says
  whether the process runs at all: a stopped (SIGSTOP) or frozen process stops touching it, a writer waiting
  for a lock does not. A touch needs no free space (a full disk must not look like a dead writer).
- `writer.json`: how the writing goes, rewritten when that changes: since when the current pass has been
  waiting for the database (slow), and since when passes fail and why (records cannot be written).
The master's supervisor (ivr/worker/supervisor.py) reads the same heartbeat to restart a hung writer.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ivr.store.files import write_atomically

log = logging.getLogger("ivr.spool.recorder")

HEARTBEAT = "writer.alive"
STATE = "writer.json"
BEAT_EVERY_S = 1.0
IDLE_PROBE_S = 5.0  # with nothing to write for this long, the writer tries an empty write (see probe)
BUSY_AFTER_S = 1.0  # a pass longer than this is published as "busy since" (a healthy pass takes milliseconds)
# A pass still going after this is stuck, not waiting: each statement has its timeout (PostgreSQL's
# statement_timeout, SQLite's busy timeout), so the heartbeat stops and the supervisor restarts the process.
STUCK_PASS_S = 300.0
# SQLSTATEs of "the database is busy, try again": lock_timeout, statement_timeout, serialization, deadlock.
WAIT_SQLSTATES = {"55P03", "57014", "40001", "40P01"}


@dataclass
class WriterState:
    """How the writing goes (wall-clock times, so any process can compute ages)."""

    pid: int = 0
    busy_since: float | None = None  # the current pass began then and has not ended
    failing_since: float | None = None  # when the first failed pass of the current run of failures began
    waiting: bool = False  # the failures are the database being busy (a lock, a timeout): slow, not broken
    error: str = ""  # the last failure, one line


def is_waiting(exc: BaseException) -> bool:
    """Did the write fail because the database was busy or its connection went away (retried as it is), not
    because it cannot take the write?"""
    if getattr(exc, "connection_invalidated", False):
        return True
    cause = getattr(exc, "orig", None) or exc
    state = getattr(cause, "sqlstate", None) or ""
    if state in WAIT_SQLSTATES or state.startswith(("08", "57P")):  # connection lost, server shutting down
        return True
    return "database is locked" in str(cause) or "database table is locked" in str(cause)


def one_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}"[:300]


class WriterStatus:
    """Kept by the writer's process: passes report to it, a thread publishes it."""

    def __init__(self, spool_dir: Path):
        self.spool_dir = Path(spool_dir)
        self._lock = threading.Lock()
        self._pass_started: float | None = None
        self._state = WriterState(pid=os.getpid())
        self._published: WriterState | None = None
        self._last_try = time.monotonic()

    def pass_started(self) -> None:
        self._pass_started = time.time()

    def pass_ended(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._last_try = time.monotonic()
            started, self._pass_started = self._pass_started, None
            if error is None:
                self._state.failing_since, self._state.waiting, self._state.error = None, False, ""
                return
            if self._state.failing_since is None:  # records have been held up since this pass began
                self._state.failing_since = started or time.time()
            self._state.waiting, self._state.error = is_waiting(error), one_line(error)

    def probe_due(self) -> bool:
        return time.monotonic() - self._last_try > IDLE_PROBE_S

    def probe(self, db) -> None:
        """A write transaction that changes nothing: it fails as a batch would on a database that is read-only,
        refuses writes, is locked or unreachable (not on a full disk: nothing is written)."""
        from sqlalchemy import text

        was_failing = self._state.failing_since is not None
        self.pass_started()
        try:
            with db.write() as conn:
                conn.execute(text("UPDATE call_events SET id = id WHERE 1 = 0"))
        except Exception as exc:
            self.pass_ended(exc)
            if not was_failing:
                log.error("the database takes no writes now (call records will wait in the spool): %s",
                          one_line(exc))
            return
        self.pass_ended(None)

    def snapshot(self) -> WriterState:
        with self._lock:
            started = self._pass_started
            busy = started if started is not None and time.time() - started > BUSY_AFTER_S else None
            return WriterState(**{**asdict(self._state), "busy_since": busy})

    def beat(self) -> None:
        """Touch the heartbeat (unless a pass is stuck); write the state file if the state changed."""
        started = self._pass_started
        if started is not None and time.time() - started > STUCK_PASS_S:
            return
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            (self.spool_dir / HEARTBEAT).touch()
        except OSError:
            pass
        state = self.snapshot()
        if state != self._published:
            try:
                write_atomically(self.spool_dir / STATE, json.dumps(asdict(state)).encode())
                self._published = state
            except OSError as exc:  # a full disk: the probes then see the heartbeat alone
                log.warning("could not write %s: %s", STATE, exc)

    def run(self, stop: threading.Event) -> threading.Thread:
        """Beat every second in a thread of its own until `stop` is set."""
        def _loop():
            while True:
                self.beat()
                if stop.wait(BEAT_EVERY_S):
                    return

        thread = threading.Thread(target=_loop, name="writer-heartbeat", daemon=True)
        thread.start()
        return thread


def heartbeat_age(spool_dir: Path, now: float | None = None) -> float | None:
    """Seconds since the writer last showed a sign of life; None if it never did (in this run)."""
    try:
        mtime = (Path(spool_dir) / HEARTBEAT).stat().st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - mtime)


def read_state(spool_dir: Path) -> WriterState | None:
    """The state the writer last published, or None if there is none to read."""
    try:
        data = json.loads((Path(spool_dir) / STATE).read_text())
        return WriterState(**{k: data.get(k) for k in WriterState.__dataclass_fields__})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
