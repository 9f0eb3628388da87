"""Writing a batch of spooled records in one transaction, idempotently; setting aside what the database refuses."""
from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, String, Text, bindparam, case, cast, column, func, literal, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from ivr.core.call_status import TERMINAL, status_order
from ivr.spool.appender import SpoolObserver
from ivr.spool.segments import encode, now
from ivr.store import notice_sends, queues, sealed
from ivr.store.db import Database, dialect_insert
from ivr.store.driver_many import DriverMany
from ivr.store.desk import sign_out_ended_lines
from ivr.store.models import Agent, Call, CallEvent, Job, QueueEntry, VerificationAttempt
from ivr.store.models.queues import REASON_CHARS
from ivr.store.queues import ON_HOLD

log = logging.getLogger("ivr.spool.recorder")

def _ts(value: float | str | None) -> datetime:
    """A record's time: Unix time, or an ISO string (spool segments written by earlier versions)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    return datetime.fromisoformat(value) if value else datetime.now(timezone.utc)


REJECTED = "rejected.jsonl"  # in the spool folder: records the database refused on their own, with why
MAX_REJECTED = 8  # more records than this refused on their own in one batch: the fault is not in them


_AFTER_CALLBACKS = ("callback", "queue_exit", "status")


class BatchRefused(Exception):
    """Too many records of a batch were refused one by one: a fault of the code or the schema, not of the
    records. Nothing was set aside; the batch is tried again later."""


def write_batch(db: Database, records: list[dict], spool_dir: Path,
                observer: SpoolObserver | None = None) -> int:
    """Write records in one transaction; returns how many were set aside.

    A record the database (or this code) refuses would otherwise fail its whole batch on every retry, and
    no call would be recorded from then on. So when a batch fails for what it holds rather than because the
    database cannot be reached, it is split in halves until the records refused on their own are found;
    those go to `rejected.jsonl` in the spool folder, with the reason, and the rest is written. Writes are
    idempotent, so halves written before a later failure are written again harmlessly. Raises when the
    database cannot be reached, or when more than MAX_REJECTED records are refused (BatchRefused).
    A batch with callbacks is written in three steps, in the order the caller lived them: the records
    before (the queue entry whose place a callback keeps), each callback through the store's own function,
    then how the wait and the call ended (which must not close the entry before the callback claims it).
    """
    rejected: list[tuple[dict, Exception]] = []
    records = _sealed_jobs(db, records)
    callbacks = [r for r in records if r.get("type") == "callback"]
    if not callbacks:
        _write_or_split(db, records, rejected)
    else:
        _write_or_split(db, [r for r in records if r.get("type") not in _AFTER_CALLBACKS], rejected)
        for record in callbacks:
            _store_callback(db, record, rejected)
        _write_or_split(db, [r for r in records if r.get("type") in _AFTER_CALLBACKS[1:]], rejected)
    if rejected:
        lines = [encode({"at": now(), "error": _reason(exc), "record": record}) + "\n"
                 for record, exc in rejected]
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(spool_dir / REJECTED, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # personal data
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.writelines(lines)
        except OSError as exc:
            log.error("could not keep the refused records in %s: %s; %d records LOST", spool_dir / REJECTED, exc,
                      len(rejected))
            for record, _ in rejected if observer is not None else ():
                observer.lost(1, "refused", str(record.get("type")))
        for record, exc in rejected:
            log.error("call record refused by the database and set aside in %s (call %s): %s",
                      REJECTED, str(record.get("call_sid"))[:64], _reason(exc))
    return len(rejected)


def _sealed_jobs(db: Database, records: list[dict]) -> list[dict]:
    """Jobs' numbers sealed before they reach the database (ivr/store/sealed.py), if the webhook that spooled
    them could not: with no usable data key a job is stored failed, with the reason, never in clear."""
    return [{**r, **sealed.stored_job(db, r["payload"])}
            if r.get("type") == "job" and isinstance(r.get("payload"), dict) and "status" not in r else r
            for r in records]


def _reason(exc: Exception) -> str:
    """Why a record was refused, without the statement and its parameters (other callers' records)."""
    cause = getattr(exc, "orig", None) or exc
    return f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"[:300]


def _write_or_split(db: Database, records: list[dict], rejected: list) -> None:
    if not records:
        return
    try:
        with db.write() as conn:
            write_records(conn, records)
        return
    except Exception as exc:
        if _unreachable(exc):
            raise
        if len(records) == 1:
            _refused(records[0], exc, rejected)
            return
    half = len(records) // 2
    _write_or_split(db, records[:half], rejected)
    _write_or_split(db, records[half:], rejected)


def _refused(record: dict, exc: Exception, rejected: list) -> None:
    rejected.append((record, exc))
    if len(rejected) > MAX_REJECTED:
        raise BatchRefused(f"more than {MAX_REJECTED} records refused one by one; last: {_reason(exc)}") from exc


def _store_callback(db: Database, r: dict, rejected: list) -> None:
    """A callback the caller was promised (ivr/store/queues.py: once per call), asked for at the record's time.
    Its number was sealed by the webhook that spooled it (webhooks/twilio_view.py): it is stored as it is."""
    try:
        queues.request_callback(db, call_sid=r["call_sid"], number=r.get("number") or "",
                                number_hash=r.get("number_hash"), number_masked=r.get("number_masked"),
                                language=r["language"], queue=r["queue"], priority=int(r["priority"]),
                                reason=r.get("reason") or "", keep_place=bool(r.get("keep_place")),
                                voicemail_url=r.get("voicemail_url"), requested_at=_ts(r.get("at")),
                                reference=r.get("reference") or "")
    except Exception as exc:
        if _unreachable(exc):
            raise
        _refused(r, exc, rejected)


def _unreachable(exc: Exception) -> bool:
    """The database could not be reached or could not take the write now (locked, restarting, a lost
    connection): nothing to do with the records."""
    return isinstance(exc, (OSError, sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.InternalError,
                            sa_exc.DisconnectionError, sa_exc.TimeoutError)) or bool(
        getattr(exc, "connection_invalidated", False))


def write_records(conn: Connection, records: list[dict]) -> None:
    """Apply records in one transaction, a few statements per batch; replays change nothing.

    The two big ones, calls and their steps, go to PostgreSQL as one JSON array each, which the server
    unpacks (json_to_recordset): one statement instead of one per row, about half the CPU of a pass
    (docs/performance.md). SQLite runs in-process, where the driver's executemany is already one loop in C:
    they and the status updates go straight to it, rows as tuples (ivr/store/driver_many.py)."""
    records = [_without_nul(r) for r in records]
    pg = conn.dialect.name == "postgresql"
    calls = list(_call_rows(records).values())
    if calls:
        if pg:
            conn.execute(_PG_CALLS_UPSERT, {"rows": _json_rows(calls)})
        else:
            _SQLITE_CALLS_UPSERT.run(conn, calls)
    events = [
        {"call_sid": r["call_sid"], "step": r["step"][:160], "at": _ts(r.get("at")), "kind": r["kind"],
         "digits": (r.get("digits") or None) and str(r["digits"])[:32], "detail": r.get("detail")}
        for r in records if r["type"] == "event" and r.get("call_sid") and r.get("step")
    ]
    if events:
        if pg:
            conn.execute(_PG_EVENTS_INSERT, {"rows": _json_rows(events)})
        else:
            _SQLITE_EVENTS_INSERT.run(conn, events)
    _write_queue_records(conn, records)
    jobs = [r for r in records if r["type"] == "job" and r.get("call_sid")]
    if jobs:
        conn.execute(dialect_insert(conn, Job.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"]), [
            {"kind": r["kind"], "payload": json.dumps(r["payload"]), "status": r.get("status", "pending"),
             "last_error": r.get("last_error"), "attempts": 0,
             "run_after": _ts(r.get("at")), "dedupe_key": r["dedupe_key"][:160], "created_at": _ts(r.get("at")),
             "updated_at": _ts(r.get("at"))} for r in jobs])
    attempts = [{"call_sid": r["call_sid"][:64], "step": str(r.get("step"))[:160], "at": _ts(r.get("at")),
                 "caller_hash": r.get("caller_hash"), "ok": bool(r.get("ok"))}
                for r in records if r["type"] == "verify_attempt" and r.get("call_sid")]
    if attempts:  # references keyed in (key 8): the limits on wrong ones count these
        conn.execute(dialect_insert(conn, VerificationAttempt.__table__).on_conflict_do_nothing(
            index_elements=["call_sid", "step"]), attempts)
    statuses = [r for r in records if r["type"] == "status" and r.get("call_sid") and r.get("status")]
    for terminal in (False, True):
        rows = [_status_row(r) for r in statuses if (r["status"] in TERMINAL) == terminal]
        if rows:
            if pg:
                conn.execute(_status_update(terminal), rows)
            else:
                _SQLITE_STATUS_UPDATE[terminal].run(conn, rows)
    ended = [r for r in statuses if r["status"] in TERMINAL]
    _close_ended_calls_queue_entries(conn, ended)
    sign_out_ended_lines(conn, {r["call_sid"]: _ts(r.get("at")) for r in ended})
    notice_sends.write_spooled(conn, [r for r in records if r["type"] in ("notice_status", "notice_reply")])


def _close_ended_calls_queue_entries(conn: Connection, ended: list[dict]) -> None:
    """A call that ended has left its queue, whatever became of the Enqueue action's request (Twilio may
    never send it, or it may be lost): otherwise the entry waits for ever and the longest wait, which
    routing reads, only grows. "ended": how it ended is not known, only that it did."""
    if not ended:
        return
    c = QueueEntry.__table__.c
    result = conn.execute(update(QueueEntry.__table__)
                          .where(c.call_sid == bindparam("sid"), _one_of(c.status, ON_HOLD))
                          .values(status="ended", ended_at=bindparam("ended")),
                          [{"sid": r["call_sid"], "ended": _ts(r.get("at"))} for r in ended])
    if result.rowcount and result.rowcount > 0:
        log.info("%d queue entries closed by their call's final status (no Enqueue action came)", result.rowcount)


def _one_of(col, values: tuple[str, ...]):
    """`col IN (...)` with one bound parameter per value, for a statement run with executemany(): the
    "expanding" IN that SQLAlchemy builds from a plain list is refused there, and a batch that ended two calls
    was split in halves down to one call per transaction (written in the end, at many times the CPU)."""
    return col.in_([literal(v) for v in values])


def _write_queue_records(conn: Connection, records: list[dict]) -> None:
    """Who waits in which queue since when, and how their wait ended: the picture every worker shares."""
    entering = [{"call_sid": r["call_sid"], "queue": r["queue"], "priority": int(r["priority"]),
                 "language": r.get("language") or "", "reason": (r.get("reason") or "")[:REASON_CHARS],
                 "severity": r.get("severity") or "", "affected": bool(r.get("affected")), "status": "waiting",
                 "verified": bool(r.get("verified")),
                 "enqueued_at": _ts(r.get("at"))}
                for r in records if r["type"] == "queue_enter" and r.get("call_sid")]
    if entering:
        conn.execute(dialect_insert(conn, QueueEntry.__table__).on_conflict_do_nothing(index_elements=["call_sid"]),
                     entering)
    leaving = [{"sid": r["call_sid"], "st": r["status"], "ended": _ts(r.get("at")), "wait": r.get("wait_s"),
                "agent": r.get("agent"), "by": r.get("dequeued_by")}
               for r in records if r["type"] == "queue_exit" and r.get("call_sid")]
    if leaving:
        c = QueueEntry.__table__.c
        # Only a waiting entry ends: a callback or an agent's answer already recorded is never overwritten.
        # "ended" (the call's final status came first) is provisional: the queue's own word is better.
        conn.execute(update(QueueEntry.__table__).where(c.call_sid == bindparam("sid"),
                                                        _one_of(c.status, (*ON_HOLD, "ended")))
                     .values(status=bindparam("st"), ended_at=bindparam("ended"), wait_s=bindparam("wait"),
                             agent=func.coalesce(bindparam("agent", type_=String), _agent_on_line)), leaving)


# The agent whose agent-line call Twilio connected a caller to (the <Queue url> request's DequeingCallSid).
_agent_on_line = (select(Agent.name).where(Agent.line_call_sid == bindparam("by", type_=String))
                  .limit(1).scalar_subquery())

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
_SQLITE_CALLS_UPSERT = DriverMany(_calls_on_conflict(sqlite.insert(Call.__table__)), sqlite.dialect(),
                                  _CALL_COLUMNS)
_SQLITE_EVENTS_INSERT = DriverMany(sqlite.insert(CallEvent.__table__).on_conflict_do_nothing(
    index_elements=["call_sid", "step"]), sqlite.dialect(), _EVENT_COLUMNS)


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


_SQLITE_STATUS_UPDATE = {terminal: DriverMany(_status_update(terminal), sqlite.dialect())
                         for terminal in (False, True)}
