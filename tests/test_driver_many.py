"""The spool writer's rows go to SQLite through the driver's executemany (ivr/store/driver_many.py), and to
PostgreSQL as JSON arrays: either way a call must be stored exactly as SQLAlchemy's own statements store it,
down to the text of a time in SQLite's file, or every report and time-range query reading it would drift."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.dialects import sqlite

from ivr.core.call_status import status_order
from ivr.spool.batch import write_records
from ivr.store.db import Database
from ivr.store.driver_many import DriverMany
from ivr.store.models import Call, CallEvent

AT = 1_796_000_000.123456  # 2026-12-01, with microseconds


@pytest.fixture
def db(config):
    database = Database(config.db_url)
    yield database
    database.dispose()


def _spooled(sid: str) -> list[dict]:
    """A call as the webhooks spool it: who called on its first step, a menu key, its final status."""
    return [
        {"type": "event", "call_sid": sid, "step": "incoming#0", "n": 0, "kind": "call_started", "detail": None,
         "digits": None, "call_info": True, "caller_hash": "ab" * 32, "caller_masked": "***0123",
         "mode": "live", "incident_id": 3, "outcome": "menu", "language": "es", "at": AT},
        {"type": "event", "call_sid": sid, "step": "menu?l=es&s=1#0", "n": 1, "kind": "menu", "detail": "facts",
         "digits": "1", "outcome": "listening", "language": "es", "at": AT + 2.5},
        {"type": "status", "call_sid": sid, "status": "completed", "sequence": 2, "duration": 41, "at": AT + 41},
    ]


def _by_sqlalchemy(conn, sid: str) -> None:
    """The same call written with SQLAlchemy's own Core statements, value by value."""
    t = lambda s: datetime.fromtimestamp(AT + s, timezone.utc)  # noqa: E731
    conn.execute(insert(Call), {"call_sid": sid, "started_at": t(0), "caller_hash": "ab" * 32,
                                "caller_masked": "***0123", "mode": "live", "incident_id": 3,
                                "outcome": "listening", "language": "es", "outcome_step": 1})
    conn.execute(insert(CallEvent), [
        {"call_sid": sid, "step": "incoming#0", "at": t(0), "kind": "call_started", "digits": None, "detail": None},
        {"call_sid": sid, "step": "menu?l=es&s=1#0", "at": t(2.5), "kind": "menu", "digits": "1",
         "detail": "facts"}])
    conn.execute(update(Call).where(Call.call_sid == sid).values(
        status="completed", status_sequence=status_order("completed", 2), ended_at=t(41), duration_s=41))


def _raw(conn, table: str, sid: str, order: str) -> list[tuple]:
    """Every column but the keys, as the database holds it (SQLite: the very text in the file)."""
    rows = conn.exec_driver_sql(f"SELECT * FROM {table} WHERE call_sid = '{sid}' ORDER BY {order}")
    skip = {"id", "call_sid"}
    return [tuple(v for k, v in row._mapping.items() if k not in skip) for row in rows]


def test_the_writer_stores_a_call_exactly_as_sqlalchemy_would(db):
    by_writer, by_hand = "CA" + "1" * 32, "CA" + "2" * 32
    with db.write() as conn:
        write_records(conn, _spooled(by_writer))
        _by_sqlalchemy(conn, by_hand)
    with db.read() as conn:
        assert _raw(conn, "calls", by_writer, "call_sid") == _raw(conn, "calls", by_hand, "call_sid")
        assert _raw(conn, "call_events", by_writer, "step") == _raw(conn, "call_events", by_hand, "step")
        stored = _raw(conn, "calls", by_writer, "call_sid")[0]
        assert "completed" in stored and 41 in stored and "***0123" in stored  # not two empty rows alike
        started = conn.execute(select(Call.started_at).where(Call.call_sid == by_writer)).scalar()
    assert started.timestamp() == pytest.approx(AT, abs=1e-6)


def test_a_column_left_out_gets_its_constant_default_and_a_per_row_default_is_refused():
    table = Table("t", MetaData(), Column("k", String, primary_key=True), Column("n", Integer, default=-1),
                  Column("at", String, default=lambda: "now"))
    with pytest.raises(ValueError, match="at's default is computed per row"):
        DriverMany(insert(table), sqlite.dialect(), ["k", "n"])
    many = DriverMany(insert(table), sqlite.dialect(), ["k", "at"])
    assert many.sql == "INSERT INTO t (k, n, at) VALUES (?, ?, ?)"
    assert many.rows([{"k": "a", "at": "x"}, {"k": "b", "at": "y", "n": 5}]) == [("a", -1, "x"), ("b", 5, "y")]
