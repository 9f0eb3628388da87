"""Recording calls and their steps without putting a database write in the caller's path.

A webhook appends its events to this worker's spool file: one small write, no fsync; it survives the
process being killed. Writes to the database are idempotent: (CallSid, step) is unique, so a replayed spool
file or a request Twilio retried is recorded once. Two ways to get the spool into the database:

- "process" (what `ivr serve` runs): the workers only append; one `ivr background` process per server,
  started and restarted by gunicorn's master, tails every worker's segments and writes them in batches
  (SpoolWriter). The web workers spend no CPU and no GIL time on database writes, which measured as about a
  third of a webhook's cost when done in a thread beside the request.
- "thread" (in-process use: tests, `ivr simulate`): each process keeps an in-memory batch too, and a
  background thread writes it every `interval` seconds.

If the database is down, segments are kept and replayed when it returns; segments left by a dead worker
are picked up by a live writer.
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

from sqlalchemy import Connection, Text, bindparam, case, cast, column, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from ivr.store.db import Database
from ivr.store.models import Call, CallEvent, Job
from ivr.store.models_routing import QueueEntry

log = logging.getLogger(__name__)

TERMINAL = ("completed", "busy", "failed", "no-answer", "canceled")
_STATUS_RANK = {"queued": 0, "initiated": 0, "ringing": 1, "in-progress": 2, **{s: 3 for s in TERMINAL}}


def status_order(status: str, sequence: int | None) -> int:
    """A number that only grows as a call progresses: terminal states beat all others, then Twilio's sequence."""
    return _STATUS_RANK.get(status, 0) * 100_000 + min(max(sequence or 0, 0), 99_999)


# One encoder for every record: json.dumps with non-default separators builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def _now() -> float:
    """When a record was made: Unix time (cheaper in the webhook's path than an ISO string)."""
    return round(time.time(), 6)


SEGMENT_MAX_BYTES = 8 << 20  # a worker starts a new spool segment past this size ("process" mode)


class EventRecorder:
    """Per-process recorder. `record()` is what webhooks call; `flush()` writes everything pending now
    ("thread" mode; in "process" mode the spool writer process does that)."""

    def __init__(self, db: Database, spool_dir: Path, interval: float = 0.05, mode: str = "thread"):
        if mode not in ("thread", "process"):
            raise ValueError(f"event writer mode must be thread or process, not {mode!r}")
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.spool_only = mode == "process"
        self._written = 0  # bytes in the open segment (process mode)
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
        line = (_encode(data) + "\n").encode()
        with self._lock:
            if self.spool_only:
                self._spool_only(line)
                return
            self._ensure_started()
            if self._fd is None:
                self._open_segment()
            if self._fd is not None:
                try:
                    os.write(self._fd, line)
                except OSError as exc:
                    log.error("spool write failed, event kept in memory only: %s", exc)
            self._batch.append(data)

    def _spool_only(self, line: bytes) -> None:
        """Process mode: append to the open segment; a full one is closed for the writer process."""
        if self._pid != os.getpid():  # forked: the parent's segment is not ours
            self._pid, self._fd, self._segment, self._written = os.getpid(), None, None, 0
            atexit.register(self.close)
        if self._fd is not None and self._written >= SEGMENT_MAX_BYTES:
            self._close_segment()
        if self._fd is None:
            self._open_segment()
            self._written = 0
        if self._fd is None:
            log.error("no spool segment: an event is lost (%d bytes)", len(line))
            return
        try:
            os.write(self._fd, line)
            self._written += len(line)
        except OSError as exc:
            log.error("spool write failed, an event is lost: %s", exc)

    def _close_segment(self) -> None:
        fd, segment, self._fd, self._segment = self._fd, self._segment, None, None
        if fd is not None:
            os.close(fd)
        if segment is not None:
            try:
                os.replace(segment, segment.with_suffix(".closed"))  # complete: the writer may finish it
            except OSError as exc:
                log.error("could not close spool segment %s: %s", segment.name, exc)

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
        """Write everything pending (this worker's batch, then any kept or orphaned segments). Returns rows.
        In process mode the writer process does this: nothing to do here."""
        if self.spool_only:
            return 0
        with self._flush_lock:
            with self._lock:
                batch, segment, fd = self._batch, self._segment, self._fd
                self._batch, self._segment, self._fd = [], None, None
            if fd is not None:
                os.close(fd)
            written = 0
            if batch:
                try:
                    written += self._write(batch)
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
            records = _parse_lines(claimed.read_bytes(), claimed.name)
            try:
                done = self._write(records) if records else 0
            except Exception as exc:
                os.replace(claimed, path.with_name(path.name.split(".")[0] + ".pending"))
                self._next_orphan_scan = time.monotonic() + 1.0
                log.error("replay of %s failed, will retry: %s", path.name, exc)
                break
            claimed.unlink()
            written += done
            log.info("replayed %d spooled events from %s", done, path.name)
        else:
            self._next_orphan_scan = time.monotonic() + 1.0
        return written

    def _write(self, records: list[dict]) -> int:
        """Write records; returns how many were written (the rest were set aside, see write_batch)."""
        return len(records) - write_batch(self.db, records, self.spool_dir)

    def close(self) -> None:
        """Flush this worker's own events and stop (at worker exit); kept segments wait for another worker."""
        if self.spool_only:
            with self._lock:
                if self._pid == os.getpid():
                    self._close_segment()
            return
        if self._pid != os.getpid() or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._next_orphan_scan = float("inf")
        try:
            self.flush()
        except Exception:
            log.exception("final event flush failed; the spool keeps the events")


class SpoolWriter:
    """Process mode: tail every worker's spool segments and write them to the database in batches.

    One per server (`ivr background`, started by `ivr serve`). Each pass reads what was appended since the
    last one (whole lines only), writes it all in one transaction, then remembers how far it got, in memory
    and in `writer-offsets.json`. A restart re-reads at most one pass worth: the writes are idempotent.
    Closed segments and those of dead workers are deleted once written; nothing is deleted before that.
    """

    OFFSETS = "writer-offsets.json"
    HEARTBEAT = "writer.alive"
    MAX_PASS_BYTES = 16 << 20  # per pass, over all segments: bounds memory and the transaction

    def __init__(self, db: Database, spool_dir: Path, interval: float = 0.1, nice: int = 0):
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.failures = 0
        self.written = 0
        self._offsets: dict[str, int] = {}
        self._load_offsets()
        if nice and not db.is_sqlite:
            self._nice_backends(nice)

    def _nice_backends(self, nice: int) -> None:
        """PostgreSQL on this host: put the server processes doing our writes below the web workers too.

        Works when allowed (same user, or root); otherwise, or for a remote server, nothing changes."""
        from sqlalchemy import event

        @event.listens_for(self.db.engine, "connect")
        def _renice(dbapi_conn, _record):
            try:
                cur = dbapi_conn.cursor()
                cur.execute("SELECT pg_backend_pid(), inet_server_addr() IS NULL OR host(inet_server_addr()) "
                            "IN ('127.0.0.1', '::1')")
                pid, local = cur.fetchone()
                cur.close()
                dbapi_conn.commit()
                if local:
                    os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), nice))
            except Exception as exc:  # not permitted, or not this host: harmless
                log.debug("could not renice the database backend: %s", exc)

    def _load_offsets(self) -> None:
        try:
            data = json.loads((self.spool_dir / self.OFFSETS).read_text())
            self._offsets = {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._offsets = {}

    def _save_offsets(self) -> None:
        tmp = self.spool_dir / f".{self.OFFSETS}.tmp"
        try:
            tmp.write_text(json.dumps(self._offsets))
            os.replace(tmp, self.spool_dir / self.OFFSETS)
        except OSError as exc:  # a restart then re-reads a little more: harmless
            log.warning("could not save spool offsets: %s", exc)

    def beat(self) -> None:
        """Say this writer is alive (/healthz reads the file's age)."""
        path = self.spool_dir / self.HEARTBEAT
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError:
            pass

    def pass_once(self) -> int:
        """Write everything readable now; returns the number of records written (0 if the database failed)."""
        self.beat()
        plan, records, budget = [], [], self.MAX_PASS_BYTES
        for name in sorted(os.listdir(self.spool_dir)) if self.spool_dir.is_dir() else []:
            if not name.startswith("events-") or budget <= 0:
                continue
            path = self.spool_dir / name
            base, _, suffix = name.partition(".")
            live = suffix == "open" and _alive(_segment_pid(base))
            if suffix.startswith("replay") and not _replayable(path):
                continue  # a thread-mode process is replaying it right now
            start = self._offsets.get(base, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read(budget)
                    at_end = not fh.read(1)
            except FileNotFoundError:
                continue
            budget -= len(data)
            finished = not live and at_end
            if not finished:
                cut = data.rfind(b"\n") + 1  # whole lines only: the rest may still be being written
                data = data[:cut]
            records.extend(_parse_lines(data, name))
            plan.append((path, base, start + len(data), finished))
        set_aside = 0
        if records:
            try:
                set_aside = write_batch(self.db, records, self.spool_dir)
            except Exception as exc:
                self.failures += 1
                log.error("database write failed; %d spooled events kept for the next pass: %s", len(records), exc)
                return 0
        for path, base, offset, finished in plan:
            if finished:
                path.unlink(missing_ok=True)
                self._offsets.pop(base, None)
            else:
                self._offsets[base] = offset
        present = {name.partition(".")[0] for name in os.listdir(self.spool_dir)} if self.spool_dir.is_dir() else set()
        for base in [b for b in self._offsets if b not in present]:
            del self._offsets[base]  # replayed and removed by someone else
        if plan:
            self._save_offsets()
        self.written += len(records) - set_aside
        return len(records) - set_aside

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; then drain what is left (bounded by a few seconds)."""
        pause = self.interval
        while not stop.is_set():
            started, failures = time.monotonic(), self.failures
            try:
                self.pass_once()
                ok = self.failures == failures
            except Exception:
                log.exception("spool pass failed")
                ok = False
            pause = self.interval if ok else min(pause * 2, 5.0)  # a database that is down: back off
            stop.wait(max(0.0, pause - (time.monotonic() - started)))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            failures = self.failures
            try:
                if not self.pass_once() and self.failures == failures:
                    break
            except Exception:
                log.exception("final spool pass failed; the spool keeps the events")
                break
            if self.failures != failures:
                time.sleep(0.5)


def _parse_lines(data: bytes, name: str) -> list[dict]:
    """The records in a piece of a spool segment; a line cut short by a kill is skipped, with a warning."""
    records = []
    for raw in data.splitlines():
        try:
            records.append(json.loads(raw))
        except ValueError:
            log.warning("skipping a torn line in %s", name)
    return records


def _segment_pid(base: str) -> int:
    try:
        return int(base.split("-")[1])
    except (IndexError, ValueError):
        return 0


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


def _ts(value: float | str | None) -> datetime:
    """A record's time: Unix time, or an ISO string (spool segments written by earlier versions)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return datetime.fromisoformat(value) if value else datetime.now(timezone.utc)


REJECTED = "rejected.jsonl"  # in the spool folder: records the database refused on their own, with why
MAX_REJECTED = 8  # more records than this refused on their own in one batch: the fault is not in them


class BatchRefused(Exception):
    """Too many records of a batch were refused one by one: a fault of the code or the schema, not of the
    records. Nothing was set aside; the batch is tried again later."""


def write_batch(db: Database, records: list[dict], spool_dir: Path) -> int:
    """Write records in one transaction; returns how many were set aside.

    A record the database (or this code) refuses would otherwise fail its whole batch on every retry, and
    no call would be recorded from then on. So when a batch fails for what it holds rather than because the
    database cannot be reached, it is split in halves until the records refused on their own are found;
    those go to `rejected.jsonl` in the spool folder, with the reason, and the rest is written. Writes are
    idempotent, so halves written before a later failure are written again harmlessly. Raises when the
    database cannot be reached, or when more than MAX_REJECTED records are refused (BatchRefused).
    """
    rejected: list[tuple[dict, Exception]] = []
    _write_or_split(db, records, rejected)
    if rejected:
        lines = [_encode({"at": _now(), "error": _reason(exc), "record": record}) + "\n"
                 for record, exc in rejected]
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(spool_dir / REJECTED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # personal data
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.writelines(lines)
        except OSError as exc:
            log.error("could not keep the refused records in %s: %s", spool_dir / REJECTED, exc)
        for record, exc in rejected:
            log.error("call record refused by the database and set aside in %s (call %s): %s",
                      REJECTED, str(record.get("call_sid"))[:64], _reason(exc))
    return len(rejected)


def _reason(exc: Exception) -> str:
    """Why a record was refused, without the statement and its parameters (other callers' records)."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]


def _write_or_split(db: Database, records: list[dict], rejected: list) -> None:
    try:
        with db.write() as conn:
            write_records(conn, records)
        return
    except Exception as exc:
        if _unreachable(exc):
            raise
        if len(records) == 1:
            rejected.append((records[0], exc))
            if len(rejected) > MAX_REJECTED:
                raise BatchRefused(f"more than {MAX_REJECTED} records refused one by one; last: "
                                   f"{_reason(exc)}") from exc
            return
    half = len(records) // 2
    _write_or_split(db, records[:half], rejected)
    _write_or_split(db, records[half:], rejected)


def _unreachable(exc: Exception) -> bool:
    """The database could not be reached or could not take the write now (locked, restarting, a lost
    connection): nothing to do with the records."""
    return isinstance(exc, (OSError, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError,
                            sa_exc.DisconnectionError, sa_exc.TimeoutError)) or bool(
        getattr(exc, "connection_invalidated", False))


def write_records(conn: Connection, records: list[dict]) -> None:
    """Apply records in one transaction, a few statements per batch; replays change nothing.

    The two big ones, calls and their steps, go to PostgreSQL as one JSON array each, which the server
    unpacks (json_to_recordset): one statement instead of one per row. Measured for a pass of 200 calls:
    7.7 ms of the writer's CPU and 4.0 ms of the server's row by row (pipelined executemany), 2.8 and 3.0
    this way. SQLite runs in-process, where executemany is already one loop in C."""
    records = [_without_nul(r) for r in records]
    pg = conn.dialect.name == "postgresql"
    calls = list(_call_rows(records).values())
    if calls:
        if pg:
            conn.execute(_PG_CALLS_UPSERT, {"rows": _json_rows(calls)})
        else:
            conn.execute(_calls_upsert(conn), calls)
    events = [
        {"call_sid": r["call_sid"], "step": r["step"][:160], "at": _ts(r.get("at")), "kind": r["kind"],
         "digits": (r.get("digits") or None) and str(r["digits"])[:32], "detail": r.get("detail")}
        for r in records if r["type"] == "event" and r.get("call_sid") and r.get("step")
    ]
    if events:
        if pg:
            conn.execute(_PG_EVENTS_INSERT, {"rows": _json_rows(events)})
        else:
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
    return _calls_on_conflict(_insert(conn, Call.__table__))


def _calls_on_conflict(stmt):
    c, new = Call.__table__.c, stmt.excluded
    newer = new.outcome_step >= c.outcome_step
    # A status or a later step may arrive before the call's first record: fill in, never overwrite;
    # outcome and language move only forward in the call's steps. Within one step the later record counts,
    # as it does inside a batch (_call_rows): a webhook's first event (who called) and its last (where the
    # call stands) may fall into two batches.
    return stmt.on_conflict_do_update(index_elements=["call_sid"], set_={
        **{k: func.coalesce(c[k], new[k]) for k in _CALL_INFO},
        "outcome": case((newer, func.coalesce(new.outcome, c.outcome)), else_=c.outcome),
        "language": case((newer, func.coalesce(new.language, c.language)), else_=func.coalesce(c.language, new.language)),
        "outcome_step": case((newer, new.outcome_step), else_=c.outcome_step),
    })


def _without_nul(record: dict) -> dict:
    """The record without NUL characters, which PostgreSQL text cannot hold: a signed request may carry one
    (Digits, From, CallStatus), and the record would be refused."""
    if not any(type(v) is str and "\x00" in v for v in record.values()):
        return record
    return {k: v.replace("\x00", "") if type(v) is str else v for k, v in record.items()}


def _json_rows(rows: list[dict]) -> str:
    """Rows as the JSON array the PostgreSQL statements below unpack (times as ISO 8601)."""
    return json.dumps(rows, separators=(",", ":"), default=datetime.isoformat)


def _from_json_rows(table, names: list[str]):
    """PostgreSQL: SELECT `names` (typed as `table`'s columns) from the JSON array bound as :rows."""
    src = func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON)).table_valued(
        *[column(n, table.c[n].type) for n in names]).render_derived(with_types=True)
    return select(*[src.c[n] for n in names])


_CALL_COLUMNS = ["call_sid", "started_at", "language", "outcome", "outcome_step", *_CALL_INFO]
_EVENT_COLUMNS = ["call_sid", "step", "at", "kind", "digits", "detail"]
_PG_CALLS_UPSERT = _calls_on_conflict(postgresql.insert(Call.__table__).from_select(
    _CALL_COLUMNS, _from_json_rows(Call.__table__, _CALL_COLUMNS)))
_PG_EVENTS_INSERT = postgresql.insert(CallEvent.__table__).from_select(
    _EVENT_COLUMNS, _from_json_rows(CallEvent.__table__, _EVENT_COLUMNS)).on_conflict_do_nothing(
    index_elements=["call_sid", "step"])


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
