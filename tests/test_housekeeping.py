"""Housekeeping (callback retention, queue reconciliation) runs on one server at a time (PostgreSQL: an
advisory lock; SQLite is one server), and `ivr background` starts without "deque mutated during iteration"."""
from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest
from sqlalchemy import event, text

from conftest import IVR, PROJECT_ROOT, server_env
from helpers import wait_for
from ivr.spool.writer import SpoolWriter
from ivr.store.db import Database
from ivr.worker.housekeeping_lock import LOCK_KEY, HousekeepingLock

TOOK_OVER = "housekeeping (retention, queue reconciliation) runs on this server now"


def _pg_only(config):
    if not config.db_url.startswith("postgres"):
        pytest.skip("one server is the only SQLite layout: nothing to share")


def test_on_sqlite_the_one_server_always_does_the_housekeeping(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'h.db'}")
    assert HousekeepingLock(db).mine() and HousekeepingLock(db).mine()
    db.dispose()


def test_only_one_server_holds_the_housekeeping_lock_until_it_lets_go(config):
    _pg_only(config)
    dbs = [Database(config.db_url) for _ in range(2)]  # two servers: two engines, two sessions
    first, second = (HousekeepingLock(db) for db in dbs)
    try:
        assert first.mine() and first.mine()
        assert not second.mine()
        first.release()
        assert second.mine() and not first.mine()
    finally:
        first.release()
        second.release()
        for db in dbs:
            db.dispose()


def test_adding_a_connect_listener_while_another_thread_connects_is_what_broke_housekeeping(config, tmp_path):
    """The cause of "deque mutated during iteration": run_background started the housekeeping thread (which
    connects first) before building the spool writer, which adds a "connect" listener on PostgreSQL. Held
    open here with a listener that waits, so the race is certain instead of 2 starts in 7."""
    _pg_only(config)
    for writer_first in (False, True):
        db = Database(config.db_url)
        connecting, go_on, errors = threading.Event(), threading.Event(), []

        @event.listens_for(db.engine, "connect")
        def _slow_first_connect(_dbapi_conn, _record):
            connecting.set()
            go_on.wait(5)

        def housekeeping():
            try:
                with db.write() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:
                errors.append(exc)

        if writer_first:  # the order run_background uses now
            SpoolWriter(db, tmp_path / "spool", nice=10)
        thread = threading.Thread(target=housekeeping)
        thread.start()
        assert connecting.wait(10)
        if not writer_first:  # the old order
            SpoolWriter(db, tmp_path / "spool", nice=10)
        go_on.set()
        thread.join(10)
        db.dispose()
        assert [str(e) for e in errors] == ([] if writer_first else ["deque mutated during iteration"])


def _holders(db: Database) -> list[int]:
    """The backend pids holding the housekeeping lock."""
    with db.read() as conn:
        return conn.execute(text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND granted"),
                            {"key": LOCK_KEY}).scalars().all()


@pytest.mark.slow
def test_of_two_ivr_backgrounds_one_does_the_housekeeping_and_the_other_takes_over_when_it_dies(config, tmp_path):
    _pg_only(config)
    procs, logs = [], []
    for n in range(2):  # two servers: each its own instance folder (spool), one database
        env = server_env(config, IVR_INSTANCE_PATH=str(tmp_path / f"server{n}"), IVR_EVENT_WRITER="process",
                         IVR_HOUSEKEEPING_SECONDS="0.3", IVR_QUEUE_RECONCILE_S="0.3", IVR_BACKGROUND_NICE="0")
        logs.append(tmp_path / f"background{n}.log")
        with open(logs[-1], "wb") as out:
            procs.append(subprocess.Popen([str(IVR), "background"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                          cwd=PROJECT_ROOT, start_new_session=True))
    db = Database(config.db_url)
    try:
        took = lambda: [n for n, log in enumerate(logs) if TOOK_OVER in log.read_text()]  # noqa: E731
        assert wait_for(lambda: len(_holders(db)) == 1 and len(took()) == 1, timeout=60), [p.read_text() for p in logs]
        (leader,) = took()
        other = 1 - leader
        for _ in range(10):  # rounds pass: still one housekeeper, the same one
            assert len(_holders(db)) == 1 and took() == [leader]
            wait_for(lambda: False, timeout=0.2)
        os.killpg(procs[leader].pid, signal.SIGKILL)  # its session ends with it, and so does the lock
        procs[leader].wait(10)
        assert wait_for(lambda: other in took() and len(_holders(db)) == 1, timeout=30), logs[other].read_text()
        for log in logs:
            assert "deque mutated" not in log.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        db.dispose()
