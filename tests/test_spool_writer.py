"""Process mode of the event spool (what `ivr serve` runs): web workers only append to their segment; one
writer process per server tails every segment and writes it to the database. Checked in the database."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from ivr.spool import batch as events_mod
from ivr.spool import appender as appender_mod
from ivr.store.db import Database
from ivr.spool.recorder import EventRecorder
from ivr.spool.writer import SpoolWriter
from ivr.store.models import Call, CallEvent


@pytest.fixture
def db(config):
    database = Database(config.db_url)
    yield database
    database.dispose()


@pytest.fixture
def spool(tmp_path):
    return tmp_path / "spool"


def _count(db, model) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def _call(recorder: EventRecorder, sid: str, steps: int = 2) -> None:
    recorder.record("call", call_sid=sid, caller_hash=None, caller_masked="+1555***0123", mode="message",
                    incident_id=None, language="en")
    for n in range(steps):
        recorder.record("event", call_sid=sid, step=f"menu?s={n}#0", n=n, kind="menu", detail="1", digits="1",
                        outcome="listening", language="en")


def _segments(spool) -> list[str]:
    return sorted(p.name for p in spool.glob("events-*"))


def test_workers_only_append_and_the_writer_writes_each_record_once(db, spool):
    recorder = EventRecorder(db, spool, mode="process")
    writer = SpoolWriter(db, spool)
    for i in range(20):
        _call(recorder, f"CA{i:032d}")
    assert _count(db, Call) == 0  # nothing reaches the database from the worker itself
    assert writer.pass_once() == 60
    assert (_count(db, Call), _count(db, CallEvent)) == (20, 40)
    assert writer.pass_once() == 0  # the open segment is remembered by offset, not read again
    _call(recorder, "CA" + "x" * 32)
    assert writer.pass_once() == 3
    assert _segments(spool) and all(n.endswith(".open") for n in _segments(spool))  # live: kept
    recorder.close()  # worker exit: the segment is closed, the writer finishes and deletes it
    assert writer.pass_once() == 0
    assert _segments(spool) == []
    assert (_count(db, Call), _count(db, CallEvent)) == (21, 42)


def test_a_line_still_being_written_waits_for_its_end(db, spool):
    recorder = EventRecorder(db, spool, mode="process")
    writer = SpoolWriter(db, spool)
    _call(recorder, "CA" + "1" * 32, steps=0)
    line = json.dumps({"type": "call", "call_sid": "CA" + "2" * 32, "mode": "message"}).encode()
    with open(spool / _segments(spool)[0], "ab") as fh:
        fh.write(line[:20])  # half a line, as a reader may see a write in progress
        fh.flush()
        assert writer.pass_once() == 1
        fh.write(line[20:] + b"\n")
    assert writer.pass_once() == 1
    assert _count(db, Call) == 2


def test_a_restarted_writer_resumes_and_a_full_replay_changes_nothing(db, spool):
    recorder = EventRecorder(db, spool, mode="process")
    for i in range(10):
        _call(recorder, f"CA{i:032d}")
    SpoolWriter(db, spool).pass_once()
    assert SpoolWriter(db, spool).pass_once() == 0  # offsets survive a restart
    (spool / SpoolWriter.OFFSETS).unlink()
    again = SpoolWriter(db, spool)  # offsets lost: everything is read again...
    assert again.pass_once() == 30
    assert (_count(db, Call), _count(db, CallEvent)) == (10, 20)  # ...and nothing is duplicated


def test_a_dead_workers_segment_is_finished_and_removed(db, spool):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    spool.mkdir(parents=True)
    lines = [json.dumps({"type": "call", "call_sid": f"CA{i:032d}", "mode": "live"}) for i in range(3)]
    torn = '{"type": "event", "call_sid": "CA'  # the write a kill -9 cut short
    (spool / f"events-{dead}-1-1.open").write_text("\n".join(lines) + "\n" + torn)
    writer = SpoolWriter(db, spool)
    assert writer.pass_once() == 3
    assert _segments(spool) == []
    assert _count(db, Call) == 3


def test_the_database_down_keeps_everything_for_the_next_pass(db, spool, monkeypatch):
    recorder = EventRecorder(db, spool, mode="process")
    writer = SpoolWriter(db, spool)
    _call(recorder, "CA" + "3" * 32)
    recorder.close()

    def down():
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(writer.db, "write", down)
    assert writer.pass_once() == 0 and writer.failures == 1
    assert _segments(spool)  # kept
    monkeypatch.undo()
    assert writer.pass_once() == 3
    assert _segments(spool) == [] and _count(db, CallEvent) == 2


def test_full_segments_roll_over_and_every_one_is_written(db, spool, monkeypatch):
    monkeypatch.setattr(appender_mod, "SEGMENT_MAX_BYTES", 600)
    recorder = EventRecorder(db, spool, mode="process")
    writer = SpoolWriter(db, spool)
    for i in range(30):
        _call(recorder, f"CA{i:032d}", steps=1)
    names = _segments(spool)
    assert len(names) > 3 and sum(n.endswith(".open") for n in names) == 1
    writer.pass_once()
    assert _segments(spool) == [n for n in names if n.endswith(".open")]  # closed ones done and deleted
    assert (_count(db, Call), _count(db, CallEvent)) == (30, 30)


def test_a_pass_reads_a_bounded_amount(db, spool, monkeypatch):
    recorder = EventRecorder(db, spool, mode="process")
    for i in range(50):
        _call(recorder, f"CA{i:032d}", steps=0)
    writer = SpoolWriter(db, spool)
    monkeypatch.setattr(SpoolWriter, "MAX_PASS_BYTES", 1000)
    first = writer.pass_once()
    assert 0 < first < 50
    while writer.pass_once():
        pass
    assert _count(db, Call) == 50


def test_healthz_says_when_the_spool_writer_is_not_running(config):
    """Under `ivr serve` the workers rely on `ivr background`: a load balancer must hear when it stopped."""
    import os
    import time

    from ivr.app import create_app

    app = create_app(config.with_overrides(event_writer="process"))
    try:
        client = app.test_client()
        beat = config.spool_dir / SpoolWriter.HEARTBEAT
        resp = client.get("/healthz")  # no writer has ever beaten here
        assert resp.status_code == 503 and any("spool writer" in p for p in resp.get_json()["problems"])
        SpoolWriter(Database(config.db_url), config.spool_dir).beat()
        assert client.get("/healthz").status_code == 200
        stale = time.time() - 60
        os.utime(beat, (stale, stale))  # a writer that stopped a minute ago
        assert client.get("/healthz").status_code == 503
    finally:
        app.extensions["ivr"].close()


def test_a_steps_outcome_survives_its_events_falling_into_two_batches(db):
    """A webhook spools its first event (who called) and its last (where the call stands) one after the
    other; the writer's pass may end between them. The call's outcome must still be the step's."""
    sid, at = "CA" + "5" * 32, 1_795_000_000.0
    first = {"type": "event", "call_sid": sid, "step": "incoming#0", "n": 0, "kind": "call_started",
             "at": at, "call_info": True, "caller_hash": "h" * 64, "caller_masked": "***0123", "mode": "live",
             "incident_id": None, "language": "en"}
    last = {"type": "event", "call_sid": sid, "step": "incoming#1", "n": 0, "kind": "menu", "at": at,
            "outcome": "listening", "language": "en"}
    for batch in ([first], [last]):
        with db.write() as conn:
            events_mod.write_records(conn, batch)
    with db.read() as conn:
        call = conn.execute(select(Call.outcome, Call.language, Call.caller_masked, Call.mode)).one()
    assert tuple(call) == ("listening", "en", "***0123", "live")


def _spool_lines(spool, records: list[dict]) -> None:
    """A finished segment of a worker that is gone, holding these records."""
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "events-999999999-1-1.closed").write_text("".join(json.dumps(r) + "\n" for r in records))


def _event(sid: str, n: int = 0, **extra) -> dict:
    return {"type": "event", "call_sid": sid, "step": f"menu?s={n}#0", "n": n, "kind": "menu",
            "at": 1_795_000_000.0 + n, **extra}


def test_a_record_the_database_refuses_is_set_aside_and_the_others_are_written(db, spool):
    """One bad record (here from an older version, without a kind; on PostgreSQL also a CallSid longer
    than its column) must not hold back the records around it, on this pass or any later one."""
    good = [_event("CA" + f"{i:032d}") for i in range(40)]
    bad = [{k: v for k, v in _event("CA" + "b" * 32).items() if k != "kind"}]
    if not db.is_sqlite:
        bad.append(_event("CA" + "x" * 100))
    _spool_lines(spool, good[:20] + bad[:1] + good[20:] + bad[1:])
    writer = SpoolWriter(db, spool)
    assert writer.pass_once() == 40 and writer.failures == 0
    assert _count(db, CallEvent) == 40 and _count(db, Call) == 40
    assert _segments(spool) == []  # finished: not read again
    refused = [json.loads(line) for line in (spool / events_mod.REJECTED).read_text().splitlines()]
    assert [r["record"] for r in refused] == bad
    assert refused[0]["error"].startswith("KeyError")
    assert all("INSERT" not in r["error"] for r in refused)  # the reason, not the batch's other records
    assert (spool / events_mod.REJECTED).stat().st_mode & 0o077 == 0  # caller data: the owner's only
    assert writer.pass_once() == 0 and _count(db, CallEvent) == 40


def test_a_batch_refused_as_a_whole_is_kept_not_set_aside(db, spool, monkeypatch):
    """When every record is refused (a bug, a schema not migrated), the fault is not in the records:
    nothing is set aside, everything waits for the next pass."""
    _spool_lines(spool, [_event("CA" + f"{i:032d}") for i in range(30)])
    writer = SpoolWriter(db, spool)

    def broken(conn, records):
        raise ValueError("no such column")

    monkeypatch.setattr(events_mod, "write_records", broken)
    assert writer.pass_once() == 0 and writer.failures == 1
    assert not (spool / events_mod.REJECTED).exists() and _segments(spool)
    monkeypatch.undo()
    assert writer.pass_once() == 30 and _count(db, CallEvent) == 30


def test_in_process_recording_sets_a_refused_record_aside_too(db, spool):
    recorder = EventRecorder(db, spool)  # thread mode: ivr simulate, tests, a plain gunicorn
    recorder.record("event", call_sid="CA" + "c" * 32, step="incoming#0", n=0, kind="call_started")
    recorder.record("event", call_sid="CA" + "d" * 32, step="incoming#0", n=0)  # no kind
    assert recorder.flush() == 1 and recorder.failures == 0
    assert _count(db, CallEvent) == 1 and (spool / events_mod.REJECTED).exists()
    recorder.close()


# -- a batch means the same as its records one by one ------------------------------------------------------
_SIDS = [f"CA{i:032x}" for i in range(4)]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@st.composite
def _records(draw) -> list[dict]:
    """Records as webhooks spool them: steps of a few calls, interleaved, out of order, some repeated
    (Twilio retries), the call's first record carrying who called; details in any text."""
    records = []
    for _ in range(draw(st.integers(1, 25))):
        sid, n = draw(st.sampled_from(_SIDS)), draw(st.integers(0, 5))
        at = 1_795_000_000 + draw(st.integers(0, 10**9)) / 10**6
        record = {"type": "event", "call_sid": sid, "step": f"menu?s={n}#{draw(st.integers(0, 1))}", "n": n,
                  "kind": draw(st.sampled_from(["menu", "invalid", "timeout", "route"])),
                  "detail": draw(st.none() | _TEXT),
                  "digits": draw(st.none() | st.from_regex(r"[0-9#*]{1,40}", fullmatch=True)),
                  "at": draw(st.sampled_from([at, datetime.fromtimestamp(at, timezone.utc).isoformat()]))}
        if draw(st.booleans()):  # the last event of a step: where the call stands (the same for a retry)
            record.update(outcome=["listening", "queued", "goodbye", "callback"][(n + int(sid[-1], 16)) % 4],
                          language=["en", "es"][n % 2])
        if n == 0 and draw(st.booleans()):
            record.update(call_info=True, caller_hash=sid[-8:] * 8, caller_masked="***0123", mode="live",
                          incident_id=int(sid[-1], 16) or None, language="en")
        records.append(record)
    return records


def _tables(db) -> tuple[list, list]:
    with db.read() as conn:
        calls = conn.execute(select(Call.call_sid, Call.started_at, Call.caller_hash, Call.caller_masked,
                                    Call.language, Call.mode, Call.incident_id, Call.outcome,
                                    Call.outcome_step, Call.status, Call.status_sequence)
                             .order_by(Call.call_sid)).all()
        steps = conn.execute(select(CallEvent.call_sid, CallEvent.step, CallEvent.at, CallEvent.kind,
                                    CallEvent.digits, CallEvent.detail)
                             .order_by(CallEvent.call_sid, CallEvent.step)).all()
    return calls, steps


def _empty(db) -> None:
    with db.write() as conn:
        conn.execute(CallEvent.__table__.delete())
        conn.execute(Call.__table__.delete())


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records())
def test_a_batch_is_written_as_its_records_one_by_one(db, records):
    """The writer sends a whole batch at once (on PostgreSQL as one JSON array per table): the rows must be
    those of the same records applied one at a time, and a replay of the batch must change nothing."""
    _empty(db)
    for record in records:
        with db.write() as conn:
            events_mod.write_records(conn, [dict(record)])
    one_by_one = _tables(db)
    _empty(db)
    with db.write() as conn:
        events_mod.write_records(conn, [dict(r) for r in records])
    assert _tables(db) == one_by_one
    with db.write() as conn:
        events_mod.write_records(conn, [dict(r) for r in records])
    assert _tables(db) == one_by_one
    calls, steps = one_by_one
    assert {c.call_sid for c in calls} == {r["call_sid"] for r in records}
    # Text and times survive the trip exactly (JSON on PostgreSQL): the first record of each step is kept.
    first = {}
    for r in records:
        first.setdefault((r["call_sid"], r["step"]), r)
    assert [(s.call_sid, s.step) for s in steps] == sorted(first)
    for s in steps:
        r = first[(s.call_sid, s.step)]
        assert (s.kind, s.detail, s.digits) == (r["kind"], r["detail"], r["digits"] and r["digits"][:32])
        assert _epoch(s.at) == pytest.approx(_epoch(r["at"]), abs=1e-6)


def _epoch(value) -> float:
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def test_a_batch_that_ends_several_calls_is_written_at_the_first_attempt(db, spool):
    """Calls that leave their queue and hang up in the same 0.1 s are the norm on a busy day: their batch must
    be written as it is, not refused and split in halves down to one ended call per transaction (all still
    written in the end, but each failed attempt a transaction rolled back: most of the writer's CPU)."""
    from sqlalchemy import event

    from ivr.store.models import QueueEntry

    sids = ["CA" + f"{i:032d}" for i in range(4)]
    at = 1_795_000_000.0
    records = [{"type": "queue_enter", "call_sid": sid, "queue": "general", "priority": 1, "at": at} for sid in sids]
    records += [{"type": "queue_exit", "call_sid": sid, "status": "bridged", "at": at + 5, "wait_s": 5}
                for sid in sids[:2]]
    records += [{"type": "status", "call_sid": sid, "status": "completed", "at": at + 9} for sid in sids]
    _spool_lines(spool, records)
    rollbacks = []
    event.listen(db.engine, "rollback", lambda conn: rollbacks.append(conn))
    assert SpoolWriter(db, spool).pass_once() == len(records)
    assert rollbacks == [] and not (spool / events_mod.REJECTED).exists()
    with db.read() as conn:
        statuses = dict(conn.execute(select(QueueEntry.call_sid, QueueEntry.status)).all())
    assert statuses == {sids[0]: "bridged", sids[1]: "bridged", sids[2]: "ended", sids[3]: "ended"}


def test_a_busy_writer_waits_longer_between_passes_and_a_quiet_one_does_not(db, spool):
    """Under a surge each pass waits BUSY_STRETCH intervals, so its own cost is shared by more records; as
    soon as a pass finds little, the writer is back to its interval (records then land within a tenth of a
    second again). Read from what the writer waits for between passes."""
    import threading

    recorder = EventRecorder(db, spool, mode="process")
    # A long interval, though nothing sleeps (Pauses notes the waits and returns): the writer waits the pause
    # it chose less the time the pass took, and on a loaded machine a pass can outlast 0.1 s, leaving 0.
    writer = SpoolWriter(db, spool, interval=2.0)
    for i in range(20):
        _call(recorder, f"CA{i:032d}")  # 60 records: a busy pass

    class Pauses(threading.Event):
        """The stop signal, noting each wait of the writer's own thread (the heartbeat has a thread too)."""

        waits: list = []

        def wait(self, timeout=None):
            if threading.current_thread() is runner:
                self.waits.append(timeout)
                if len(self.waits) == 1:
                    _call(recorder, "CA" + "q" * 32)  # 3 records: a quiet pass next
                if len(self.waits) == 3:
                    self.set()
                return self.is_set()
            return super().wait(timeout)

    stop = Pauses()
    runner = threading.Thread(target=writer.run, args=(stop,))
    runner.start()
    runner.join(timeout=30)
    assert not runner.is_alive()
    busy, quiet, idle = stop.waits
    assert 2.0 * 2 < busy <= 2.0 * SpoolWriter.BUSY_STRETCH and quiet <= 2.0 and idle <= 2.0
    assert (_count(db, Call), _count(db, CallEvent)) == (21, 42)
    recorder.close()


def test_an_idle_pass_leaves_the_offsets_file_alone(db, spool):
    """Ten passes a second with nothing to write must not rewrite the offsets file each time (a write and a
    rename per pass, most of an idle writer's CPU); a pass that moves an offset saves it."""
    recorder = EventRecorder(db, spool, mode="process")
    writer = SpoolWriter(db, spool)
    _call(recorder, "CA" + "1" * 32)
    assert writer.pass_once() == 3
    offsets = spool / SpoolWriter.OFFSETS
    saved = (offsets.stat().st_ino, offsets.stat().st_mtime_ns)  # os.replace(): a new file each time it saves
    for _ in range(3):
        assert writer.pass_once() == 0
    assert (offsets.stat().st_ino, offsets.stat().st_mtime_ns) == saved
    _call(recorder, "CA" + "2" * 32)
    assert writer.pass_once() == 3
    assert (offsets.stat().st_ino, offsets.stat().st_mtime_ns) != saved
    assert SpoolWriter(db, spool).pass_once() == 0  # a restarted writer reads on from the saved offsets
    recorder.close()
