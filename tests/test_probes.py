"""/healthz and /readyz: the same answer from every worker, the truth about call records within seconds, and
`ivr serve` restarting an `ivr background` that hangs. Under `ivr serve` where it is a served behaviour."""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from types import SimpleNamespace

import psycopg
import pytest
import requests

from helpers import wait_for
from ivr.spool.writer_status import HEARTBEAT, WriterStatus

DETECT_WITHIN_S = 15.0  # issue 21: "records cannot be written" and "background hung" reported within this


def _problems(client_or_url, path="/healthz") -> tuple[int, list[str]]:
    if isinstance(client_or_url, str):
        resp = requests.get(client_or_url + path, timeout=10)
        return resp.status_code, resp.json()["problems"]
    resp = client_or_url.get(path)
    return resp.status_code, resp.get_json()["problems"]


# -- in-process -----------------------------------------------------------------------------------------------
def test_two_workers_report_a_bad_rules_save_alike_whichever_served_a_call(config, rules_file):
    """Reproduced first: after a bad save, the worker that had taken a call since answered 503, the other 200."""
    from ivr.app import create_app

    first, second = create_app(config), create_app(config)
    try:
        assert _problems(first.test_client())[0] == _problems(second.test_client())[0] == 200
        rules_file.write_text(rules_file.read_text() + "\nqueues: [unclosed\n")
        first.extensions["ivr"].rules.rules  # the first worker takes a call: it notices the change
        one, other = _problems(first.test_client()), _problems(second.test_client())
        assert one == other and one[0] == 503, (one, other)
        assert any("routing rules file invalid" in p for p in one[1])
    finally:
        first.extensions["ivr"].close()
        second.extensions["ivr"].close()


def test_a_worker_starting_on_a_bad_rules_file_takes_the_last_good_rules(rules_file, tmp_path):
    from ivr.core.rules import RulesInvalid
    from ivr.store.rules_file import RulesStore

    kept = tmp_path / "instance" / "last_good_rules.yaml"
    good = RulesStore(rules_file, kept=kept).rules
    assert kept.read_text() == rules_file.read_text()
    rules_file.write_text("queues: [unclosed\n")
    late = RulesStore(rules_file, kept=kept)  # a worker replaced after the bad save
    assert late.rules == good and late.last_error is not None
    assert kept.read_text() != rules_file.read_text()  # a bad file is never kept
    with pytest.raises(RulesInvalid):
        RulesStore(rules_file, kept=tmp_path / "none-kept.yaml")  # nothing good to start on


def test_healthz_tells_a_hung_a_failing_and_a_waiting_writer_apart_and_readyz_ignores_them(config):
    """Under `ivr serve` one `ivr background` writes every record; the probes read what it publishes."""
    import sqlite3

    from ivr.app import create_app

    app = create_app(config.with_overrides(event_writer="process"))
    client = app.test_client()
    status = WriterStatus(config.spool_dir)
    try:
        code, problems = _problems(client)
        assert code == 503 and "not running or hung (never started)" in problems[0]
        status.beat()
        assert _problems(client) == (200, [])
        status.pass_started()
        status.pass_ended(sqlite3.OperationalError("attempt to write a readonly database"))
        status.beat()
        code, problems = _problems(client)
        assert code == 503 and problems[0].startswith("call records cannot be written for 0 s: OperationalError: "
                                                      "attempt to write a readonly database")
        status.pass_ended(psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"))
        status.beat()
        assert _problems(client)[1][0].startswith("call records delayed 0 s: the database is busy")
        status.pass_ended(None)
        status.pass_started()
        status._pass_started -= 20  # a batch waiting for a lock for 20 s, not failed yet
        status.beat()
        assert _problems(client)[1] == ["call records delayed 20 s: a write is waiting for the database"]
        status._pass_started -= 400  # past every statement's timeout: stuck, so the heartbeat stops
        os.utime(config.spool_dir / HEARTBEAT, (time.time() - 30, time.time() - 30))
        status.beat()
        assert "not running or hung (no sign of life for 30 s)" in _problems(client)[1][0]
        status.pass_ended(None)
        stale = time.time() - 60
        os.utime(config.spool_dir / HEARTBEAT, (stale, stale))  # stopped a minute ago
        code, problems = _problems(client)
        assert code == 503 and problems == ["spool writer (ivr background) not running or hung (no sign of life "
                                            "for 60 s): call records wait in the spool"]
        # None of this keeps the server from answering callers: the spool holds their records.
        assert _problems(client, "/readyz") == (200, [])
    finally:
        app.extensions["ivr"].close()


def test_every_postgresql_connection_carries_the_timeouts_for_its_use(config, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("statement_timeout and lock_timeout are PostgreSQL's (SQLite: its busy timeout)")
    from sqlalchemy import text

    from ivr.hotline import Hotline

    web, background = Hotline.build(config), Hotline.build(config, background=True)
    try:
        for hotline, expected in ((web, ("5s", "1s")), (background, ("30s", "5s"))):
            with hotline.db.read() as conn:
                got = conn.execute(text("SELECT current_setting('statement_timeout'), "
                                        "current_setting('lock_timeout')")).one()
            assert tuple(got) == expected
        listen = web.state.watch._open()  # the state LISTEN connection is opened by hand: it has them too
        try:
            assert listen.execute("SHOW lock_timeout").fetchone()[0] == "1s"
        finally:
            listen.close()
    finally:
        web.close()
        background.close()


def test_a_caller_is_answered_while_a_lock_holds_the_state_table(app, config, db_url, place_call):
    """A migration holds hotline_state for 15 s: the webhook's read gives up after its lock_timeout and the
    caller hears the snapshot, while the lock is still held (before: the webhook waited for the lock, past
    Twilio's 15 s)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's lock: test_breach_day's locked-database test")
    import threading

    from ivr.store.seed import DEFAULT_TEXTS

    assert not place_call(["9"]).ended.startswith("http-")  # the snapshot is in memory
    held, release = threading.Event(), threading.Event()

    def hold():
        with psycopg.connect(_plain_pg(config.db_url)) as locker:
            locker.execute("LOCK TABLE hotline_state IN ACCESS EXCLUSIVE MODE")
            held.set()
            release.wait(15)

    locker = threading.Thread(target=hold)
    locker.start()
    try:
        assert held.wait(10)
        time.sleep(1.2)  # past the state's trust window: the next webhook reads the row
        result = place_call(["1", "9"])
        still_held = not release.is_set() and locker.is_alive()
    finally:
        release.set()
        locker.join()
    assert still_held, "the call must have ended while the lock was held"
    assert result.ended == "hangup" and DEFAULT_TEXTS["en"]["main"] in result.said(), result.transcript()


# -- under ivr serve --------------------------------------------------------------------------------------------
def _children(srv, background: bool) -> list[int]:
    """The master's children: its `ivr background`, or its gunicorn workers."""
    import subprocess
    from pathlib import Path

    out = subprocess.run(["pgrep", "-P", str(srv.caller_master())], capture_output=True, text=True).stdout
    pids = []
    for pid in map(int, out.split()):
        try:
            if (b"background" in Path(f"/proc/{pid}/cmdline").read_bytes()) == background:
                pids.append(pid)
        except OSError:
            pass
    return pids


def _writer_pids(srv) -> list[int]:
    return _children(srv, background=True)


def _worker_pids(srv) -> list[int]:
    return _children(srv, background=False)


def _run_call(url, keys=("1", "9"), caller="+15555550123"):
    from conftest import AUTH_TOKEN
    from ivr.tools.simulate import HttpTransport, SimulatedCall

    return SimulatedCall(HttpTransport(url), AUTH_TOKEN, keys=list(keys), caller=caller).run()


def _until_reported(url, words: str, timeout: float, during=None) -> float | None:
    """Seconds until /healthz names `words` (None if it never did); `during()` runs between polls."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if any(words in p for p in _problems(url)[1]):
            return time.monotonic() - started
        if during:
            during()
        time.sleep(0.25)
    return None


def _recorded(db_url, call_sids) -> int:
    from sqlalchemy import func, select

    from ivr.store.db import Database
    from ivr.store.models import Call

    db = Database(db_url)
    try:
        with db.read() as conn:
            return conn.execute(select(func.count()).select_from(Call).where(Call.call_sid.in_(call_sids))).scalar()
    finally:
        db.dispose()


@pytest.mark.slow
def test_every_worker_gives_the_same_probe_answer_after_a_bad_rules_save(config, server, rules_file):
    srv = server(workers=3)
    assert wait_for(lambda: _problems(srv.url)[0] == 200, timeout=30)
    rules_file.write_text(rules_file.read_text() + "\nqueues: [unclosed\n")
    assert _run_call(srv.url).ended == "hangup"  # one worker takes a call (and notices); the others do not
    answers = {(code, tuple(problems)) for code, problems in (_problems(srv.url) for _ in range(40))}
    assert len(answers) == 1, answers
    [(code, problems)] = answers
    assert code == 503 and problems == ("routing rules file invalid (last good rules in use)",)
    assert {_problems(srv.url, "/readyz")[0] for _ in range(20)} == {200}
    # A worker replaced now runs on the last good rules the others keep in force (before: it failed to
    # boot on the bad file, and gunicorn's master then stopped the whole server). Under `ivr serve` the
    # pool's app is loaded before the fork (preload), so the new worker is up as soon as it is forked.
    before = _worker_pids(srv)
    os.kill(before[0], signal.SIGKILL)
    assert wait_for(lambda: srv.proc.poll() is not None or (
        len(now := _worker_pids(srv)) == len(before) and before[0] not in now), timeout=60)
    assert srv.proc.poll() is None, srv.log_path.read_text()[-2000:]
    assert {(c, tuple(p)) for c, p in (_problems(srv.url) for _ in range(40))} == {(code, problems)}
    assert all(_run_call(srv.url, caller=f"+1555666{i:04d}").ended == "hangup" for i in range(6))


@pytest.mark.slow
def test_a_stopped_background_is_reported_then_restarted_and_calls_go_on(config, server):
    srv = server(workers=2)
    assert wait_for(lambda: _writer_pids(srv) and _problems(srv.url)[0] == 200, timeout=40)
    [writer] = _writer_pids(srv)
    calls = []
    os.kill(writer, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        took = _until_reported(srv.url, "not running or hung", DETECT_WITHIN_S,
                               during=lambda: calls.append(_run_call(srv.url, caller=f"+1555444{len(calls):04d}")))
        assert took is not None, "a stopped ivr background must be reported"
        print(f"SIGSTOP of ivr background reported after {took:.1f} s")
        assert wait_for(lambda: [p for p in _writer_pids(srv) if p != writer], timeout=60), \
            "the master must kill and restart a stopped ivr background"
        print(f"a new ivr background {time.monotonic() - stopped_at:.1f} s after the SIGSTOP")
    finally:
        try:
            os.kill(writer, signal.SIGKILL)  # ours; gone already when the master did its job
        except ProcessLookupError:
            pass
    assert wait_for(lambda: _problems(srv.url)[0] == 200, timeout=60), _problems(srv.url)
    print(f"/healthz back to 200 {time.monotonic() - stopped_at:.1f} s after the SIGSTOP")
    calls.append(_run_call(srv.url, caller="+15554449999"))
    assert calls and all(c.ended == "hangup" for c in calls), [c.ended for c in calls]
    served = {c.call_sid for c in calls}
    assert wait_for(lambda: _recorded(config.db_url, served) == len(served), timeout=30)
    log = srv.log_path.read_text()
    assert f"ivr background (pid {writer}) gave no sign of life" in log and "restarting it (restart 1)" in log
    metrics = requests.get(srv.staff_url + "/metrics", timeout=10).text
    assert "ivr_background_restarts_total 1.0" in metrics
    assert requests.get(srv.url + "/healthz", timeout=10).json()["background"]["restarts"] == 1


def _plain_pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.mark.slow
def test_a_table_lock_on_postgresql_is_slow_not_dead(config, server, db_url):
    """A 20 s ACCESS EXCLUSIVE lock on call_events (what a migration or VACUUM FULL takes). Before: /readyz
    503 on every server ("writer not running": it was blocked). Now /readyz stays 200, /healthz says the
    records are delayed, and once the lock is gone they are all written."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL table lock (SQLite's write lock: test_breach_day)")
    srv = server(workers=2)
    assert wait_for(lambda: _problems(srv.url)[0] == 200, timeout=40)
    calls, ready = [], []
    locker = psycopg.connect(_plain_pg(config.db_url))
    locker.execute("LOCK TABLE call_events IN ACCESS EXCLUSIVE MODE")
    try:
        locked_at, reported = time.monotonic(), None
        while time.monotonic() - locked_at < 20:
            calls.append(_run_call(srv.url, caller=f"+1555333{len(calls):04d}"))
            ready.append(_problems(srv.url, "/readyz")[0])
            if reported is None and any("call records delayed" in p for p in _problems(srv.url)[1]):
                reported = time.monotonic() - locked_at
                print(f"table lock reported as delayed writes after {reported:.1f} s")
    finally:
        locker.rollback()
        locker.close()
    assert set(ready) == {200}, ready
    assert reported is not None and reported < DETECT_WITHIN_S
    assert calls and all(c.ended == "hangup" for c in calls), [c.ended for c in calls]
    served = {c.call_sid for c in calls}
    assert wait_for(lambda: _recorded(config.db_url, served) == len(served), timeout=30)
    assert wait_for(lambda: _problems(srv.url)[0] == 200, timeout=20), _problems(srv.url)


@pytest.mark.slow
def test_records_that_cannot_be_written_are_reported_within_seconds(config, server, db_url, tmp_path):
    """SQLite on a full disk; PostgreSQL turned read-only (what a failover to a replica leaves). Before:
    /healthz stayed green for over 50 s while no call record could be written. Once repaired, every record
    of the calls answered meanwhile is written."""
    fault = _sqlite_on_a_full_disk(config, server, tmp_path) if db_url.startswith("sqlite") \
        else _postgresql_read_only(config, server, db_url)
    with fault as f:
        assert wait_for(lambda: _problems(f.url)[0] == 200, timeout=40), _problems(f.url)
        calls = [_run_call(f.url)]
        assert wait_for(lambda: _recorded(f.db_url, {calls[0].call_sid}) == 1, timeout=20)  # nothing left to write
        f.break_it()
        # PostgreSQL read-only is found with no call at all (the writer's empty write when idle); a full disk
        # only by a write that needs space: the next call's.
        took = _until_reported(f.url, "call records cannot be written", DETECT_WITHIN_S, during=None if f.idle
                               else lambda: calls.append(_run_call(f.url, caller=f"+1555222{len(calls):04d}")))
        print(f"records that cannot be written reported after {took} s ({'idle' if f.idle else 'calls coming'}): "
              f"{_problems(f.url)[1]}")
        assert took is not None, _problems(f.url)
        calls.append(_run_call(f.url, caller="+15552229999"))
        assert _problems(f.url, "/readyz")[0] == 200  # callers are still answered...
        assert all(c.ended == "hangup" for c in calls), [c.ended for c in calls]
        f.repair()
        served = {c.call_sid for c in calls}  # ...and their records kept until they can be written
        assert wait_for(lambda: _recorded(f.db_url, served) == len(served), timeout=30)
        assert wait_for(lambda: _problems(f.url)[0] == 200, timeout=20), _problems(f.url)


@contextmanager
def _sqlite_on_a_full_disk(config, server, tmp_path):
    """A copy of the database on a small filesystem of its own (the spool stays on the instance folder's)."""
    import sqlite3
    import subprocess

    from sqlalchemy.engine import make_url

    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem to fill needs root")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    filler = disk / "filler"

    def fill():
        with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to fail at close
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass

    srv = None
    try:
        with sqlite3.connect(make_url(config.db_url).database) as src, sqlite3.connect(disk / "hotline.db") as dst:
            src.backup(dst)
        url = f"sqlite:///{disk / 'hotline.db'}"
        srv = server(workers=2, DATABASE_URL=url)
        yield SimpleNamespace(url=srv.url, db_url=url, idle=False, break_it=fill, repair=filler.unlink)
    finally:
        if srv is not None:
            srv.stop()  # before the unmount
        subprocess.run(["umount", "-l", str(disk)])


@contextmanager
def _postgresql_read_only(config, server, db_url):
    from sqlalchemy.engine import make_url

    name = make_url(db_url).database
    admin = psycopg.connect(_plain_pg(config.db_url), autocommit=True)
    kick = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"

    def read_only(on: bool):
        admin.execute(f'ALTER DATABASE "{name}" ' + ("SET default_transaction_read_only = on" if on
                                                     else "RESET default_transaction_read_only"))
        admin.execute(kick, [name])  # sessions come back read-only (as after a failover to a replica), or not

    try:
        yield SimpleNamespace(url=server(workers=2).url, db_url=config.db_url, idle=True,
                              break_it=lambda: read_only(True), repair=lambda: read_only(False))
    finally:
        read_only(False)
        admin.close()
