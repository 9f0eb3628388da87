"""Recording calls and their steps without putting a database write in the caller's path.

A webhook appends its events to this worker's spool file (one small write, no fsync: it survives the
process being killed) and to an in-memory batch. A background thread writes batches to the database every
few tens of milliseconds in one transaction. Writes are idempotent: (CallSid, step) is unique, so a replayed
spool file or a request Twilio retried is recorded once. If the database is down, the spool segment is kept
and replayed when it returns; segments left by a dead worker are picked up by a live one.
"""
from __future__ import annotations

import atexit
import glob
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, bindparam, case, func, update
from sqlalchemy.dialects import postgresql, sqlite

from ivr.db import Database
from ivr.models import Call, CallEvent, Job
from ivr.models_routing import QueueEntry

log = logging.getLogger(__name__)

TERMINAL = ("completed", "busy", "failed", "no-answer", "canceled")
_STATUS_RANK = {"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2, **{s: 3 for s in TERMINAL}}


def status_order(status: str, sequence: int | None) -> int:
    """A number that only grows as a call progresses: terminal states beat all others, then Twilio's sequence."""
    return _STATUS_RANK.get(status, 0) * 100_000 + min(max(sequence or 0, 0), 99_999)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class EventRecorder:
    """Per-process recorder. `record()` is what webhooks call; `flush()` writes everything pending now."""

    def __init__(self, db: Database, spool_dir: Path, interval: float = 0.05):
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self._lock = threading.Lock()  # guards the batch and the open segment
        self._flush_lock = threading.Lock()  # one flush at a time
        self._batch: list[dict] = []
        self._fd: int | None = None
        self._segment: Path | None = None
        self._seq = 0
        self._pid = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self.failures = 0
        self._next_orphan_scan = 0.0

    # -- the webhook side -------------------------------------------------------------------------------
    def record(self, rtype: str, /, **data) -> None:
        """Queue one record: 'call' (a call began), 'event' (a step) or 'status' (a status callback)."""
        data["type"] = rtype
        data.setdefault("at", _now())
        line = (json.dumps(data, separators=(",", ":")) + "\n").encode()
        with self._lock:
            self._ensure_started()
            if self._fd is None:
                self._open_segment()
            if self._fd is not None:
                try:
                    os.write(self._fd, line)
                except OSError as exc:
                    log.error("spool write failed, event kept in memory only: %s", exc)
            self._batch.append(data)

    # -- the background side ----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._pid == os.getpid() and self._thread is not None:
            return
        # A forked worker must not inherit its parent's segment or batch.
        self._pid, self._fd, self._segment, self._batch = os.getpid(), None, None, []
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _open_segment(self) -> None:
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            self._segment = self.spool_dir / f"events-{os.getpid()}-{time.time_ns()}-{self._seq}.open"
            self._fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            log.error("cannot open a spool segment in %s: %s", self.spool_dir, exc)
            self._fd, self._segment = None, None

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must survive anything; the spool keeps the data
                log.exception("event flush failed")

    def flush(self) -> int:
        """Write everything pending (this worker's batch, then any kept or orphaned segments). Returns rows."""
        with self._flush_lock:
            with self._lock:
                batch, segment, fd = self._batch, self._segment, self._fd
                self._batch, self._segment, self._fd = [], None, None
            if fd is not None:
                os.close(fd)
            written = 0
            if batch:
                try:
                    self._write(batch)
                    written += len(batch)
                    if segment is not None:
                        segment.unlink(missing_ok=True)
                except Exception as exc:
                    self.failures += 1
                    log.error("database write failed; %d events kept in the spool for replay: %s", len(batch), exc)
                    if segment is not None:
                        os.replace(segment, segment.with_suffix(".pending"))
                    return written
            elif segment is not None:
                segment.unlink(missing_ok=True)
            if time.monotonic() >= self._next_orphan_scan:
                written += self._replay_kept()
            return written

    def _replay_kept(self) -> int:
        """Replay segments kept after a failure, or left behind by a worker that died."""
        written = 0
        for path in sorted(glob.glob(str(self.spool_dir / "events-*"))):
            path = Path(path)
            if not _replayable(path):
                continue
            claimed = path.with_suffix(f".replay{os.getpid()}")
            try:
                os.rename(path, claimed)  # atomic claim: two live workers never replay one segment
            except OSError:
                continue
            records = []
            for raw in claimed.read_bytes().splitlines():
                try:
                    records.append(json.loads(raw))
                except ValueError:
                    log.warning("skipping a torn line in %s", claimed.name)  # a write cut by a kill
            try:
                if records:
                    self._write(records)
            except Exception as exc:
                os.replace(claimed, path.with_name(path.name.split(".")[0] + ".pending"))
                self._next_orphan_scan = time.monotonic() + 1.0
                log.error("replay of %s failed, will retry: %s", path.name, exc)
                break
            claimed.unlink()
            written += len(records)
            log.info("replayed %d spooled events from %s", len(records), path.name)
        else:
            self._next_orphan_scan = time.monotonic() + 1.0
        return written

    def _write(self, records: list[dict]) -> None:
        with self.db.write() as conn:
            write_records(conn, records)

    def close(self) -> None:
        """Flush this worker's own events and stop (at worker exit); kept segments wait for another worker."""
        if self._pid != os.getpid() or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._next_orphan_scan = float("inf")
        try:
            self.flush()
        except Exception:
            log.exception("final event flush failed; the spool keeps the events")


def _replayable(path: Path) -> bool:
    """Kept segments (.pending) are anyone's to replay; open or half-replayed ones only once their writer died."""
    if path.suffix == ".pending":
        return True
    try:
        pid = int(path.name.split("-")[1]) if path.suffix == ".open" else int(path.suffix.removeprefix(".replay"))
    except (IndexError, ValueError):
        return False
    return not _alive(pid)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _insert(conn: Connection, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _ts(value: str | None) -> datetime:
    return datetime.fromisoformat(value) if value else datetime.now(timezone.utc)


def write_records(conn: Connection, records: list[dict]) -> None:
    """Apply records in one transaction, a few executemany statements per batch; replays change nothing."""
    calls = _call_rows(records)
    if calls:
        conn.execute(_calls_upsert(conn), list(calls.values()))
    events = [
        {"call_sid": r["call_sid"], "step": r["step"][:160], "at": _ts(r.get("at")), "kind": r["kind"],
         "digits": (r.get("digits") or None) and str(r["digits"])[:32], "detail": r.get("detail")}
        for r in records if r["type"] == "event" and r.get("call_sid") and r.get("step")
    ]
    if events:
        conn.execute(_insert(conn, CallEvent.__table__).on_conflict_do_nothing(
            index_elements=["call_sid", "step"]), events)
    _write_queue_records(conn, records)
    jobs = [r for r in records if r["type"] == "job" and r.get("call_sid")]
    if jobs:
        conn.execute(_insert(conn, Job.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"]), [
            {"kind": r["kind"], "payload": json.dumps(r["payload"]), "status": "pending", "attempts": 0,
             "run_after": _ts(r.get("at")), "dedupe_key": r["dedupe_key"][:160], "created_at": _ts(r.get("at")),
             "updated_at": _ts(r.get("at"))} for r in jobs])
    statuses = [r for r in records if r["type"] == "status" and r.get("call_sid") and r.get("status")]
    for terminal in (False, True):
        rows = [_status_row(r) for r in statuses if (r["status"] in TERMINAL) == terminal]
        if rows:
            conn.execute(_status_update(terminal), rows)


def _write_queue_records(conn: Connection, records: list[dict]) -> None:
    """Who waits in which queue since when, and how their wait ended: the picture every worker shares."""
    entering = [{"call_sid": r["call_sid"], "queue": r["queue"], "priority": int(r["priority"]),
                 "language": r.get("language") or "", "reason": (r.get("reason") or "")[:40],
                 "severity": r.get("severity") or "", "affected": bool(r.get("affected")), "status": "waiting",
                 "enqueued_at": _ts(r.get("at"))}
                for r in records if r["type"] == "queue_enter" and r.get("call_sid")]
    if entering:
        conn.execute(_insert(conn, QueueEntry.__table__).on_conflict_do_nothing(index_elements=["call_sid"]),
                     entering)
    leaving = [{"sid": r["call_sid"], "st": r["status"], "ended": _ts(r.get("at")), "wait": r.get("wait_s"),
                "agent": r.get("agent")} for r in records if r["type"] == "queue_exit" and r.get("call_sid")]
    if leaving:
        c = QueueEntry.__table__.c
        # Only a waiting entry ends: a callback or an agent's answer already recorded is never overwritten.
        conn.execute(update(QueueEntry.__table__).where(c.call_sid == bindparam("sid"), c.status == "waiting")
                     .values(status=bindparam("st"), ended_at=bindparam("ended"), wait_s=bindparam("wait"),
                             agent=bindparam("agent")), leaving)


_CALL_INFO = ("caller_hash", "caller_masked", "mode", "incident_id")


def _call_rows(records: list[dict]) -> dict[str, dict]:
    """One row per call in the batch: what its first record says, and its newest outcome and language."""
    calls: dict[str, dict] = {}
    for r in records:
        sid = r.get("call_sid")
        if not sid:
            continue
        row = calls.setdefault(sid, {"call_sid": sid, "started_at": _ts(r.get("at")), "language": None,
                                     "outcome": None, "outcome_step": -1, **{k: None for k in _CALL_INFO}})
        if r["type"] == "call" or r.get("call_info"):  # a call's first record says who called, in what mode
            row.update({k: r.get(k) for k in _CALL_INFO})
            row["language"] = row["language"] or r.get("language")
        if r["type"] == "event" and (r.get("outcome") or r.get("language")):
            step = int(r.get("n") or 0)
            if step >= row["outcome_step"]:
                row["outcome_step"] = step
                row["outcome"] = r.get("outcome") or row["outcome"]
                row["language"] = r.get("language") or row["language"]
    return calls


def _calls_upsert(conn: Connection):
    stmt = _insert(conn, Call.__table__)
    c, new = Call.__table__.c, stmt.excluded
    newer = new.outcome_step > c.outcome_step
    # A status or a later step may arrive before the call's first record: fill in, never overwrite;
    # outcome and language move only forward in the call's steps.
    return stmt.on_conflict_do_update(index_elements=["call_sid"], set_={
        **{k: func.coalesce(c[k], new[k]) for k in _CALL_INFO},
        "outcome": case((newer, func.coalesce(new.outcome, c.outcome)), else_=c.outcome),
        "language": case((newer, func.coalesce(new.language, c.language)), else_=func.coalesce(c.language, new.language)),
        "outcome_step": case((newer, new.outcome_step), else_=c.outcome_step),
    })


def _status_row(r: dict) -> dict:
    return {"sid": r["call_sid"], "st": r["status"], "ord": status_order(r["status"], r.get("sequence")),
            "ended": _ts(r.get("at")), "dur": r.get("duration")}


def _status_update(terminal: bool):
    c = Call.__table__.c
    values = {"status": bindparam("st"), "status_sequence": bindparam("ord")}
    if terminal:
        values.update(ended_at=bindparam("ended"), duration_s=func.coalesce(bindparam("dur"), c.duration_s))
    return (update(Call.__table__).where(c.call_sid == bindparam("sid"), c.status_sequence < bindparam("ord"))
            .values(**values))
