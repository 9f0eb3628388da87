"""Breach day on real servers: two app servers on one PostgreSQL, a worker killed mid-surge, a rules file
replaced with garbage under load, and logs that keep no secret and no caller number."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from conftest import AUTH_TOKEN, PG_URL
from helpers import wait_for
from ivr.store import queues
from ivr.store.db import Database
from ivr.store.models import Call, CallEvent, QueueEntry
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow


def run_call(url, keys=(), caller="+15555550123"):
    return SimulatedCall(HttpTransport(url), AUTH_TOKEN, keys=list(keys), caller=caller).run()


def count(db, model, *where):
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar()


def test_two_app_servers_share_one_postgresql(config, server, db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("the two-server test needs PostgreSQL: set DATABASE_URL to a PostgreSQL server"
                    if not PG_URL else "runs once, on the PostgreSQL backend")
    a, b = server(), server(IVR_INSTANCE_PATH=str(tmp_path / "b"))  # one instance folder per server
    db = Database(config.db_url)
    from ivr.store.state import set_mode

    assert run_call(a.url, ["0", "9"]).ended != "queued"
    # Ops flip the mode through server A's process... (the database is the one place it lives)
    set_mode(db, "live", reason="agents on shift", actor="ops")
    # ...and the very next call on server B is queued.
    on_b = run_call(b.url, ["0"])
    assert on_b.ended == "queued"
    on_a = run_call(a.url, ["7"])
    # Queue state is shared: both callers are visible to either server (the agent line reads it).
    assert wait_for(lambda: count(db, QueueEntry, QueueEntry.status == "waiting") == 2)
    assert queues.next_waiting(db)["call_sid"] == on_a.call_sid  # fraud first, whichever server took it
    db.dispose()


def _surge(url, n, workers=8, keys=("1", "9")):
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda i: run_call(url, keys, caller=f"+1555555{i:04d}"), range(n)))


@contextmanager
def _calls_keep_coming(url, batch=10, workers=4):
    """Batches of complete calls placed in a background thread until the block ends; yields the list their
    results are appended to (it stops growing once the block is left)."""
    done: list = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            done.extend(_surge(url, batch, workers=workers))

    loader = threading.Thread(target=load)
    loader.start()
    try:
        yield done
    finally:
        stop.set()
        loader.join()


def test_a_worker_killed_mid_surge_loses_no_call_and_corrupts_nothing(config, server):
    srv = server(workers=2)
    db = Database(config.db_url)
    with _calls_keep_coming(srv.url) as done:
        assert wait_for(lambda: len(done) >= 10, timeout=60), "the surge never got going"
        workers, _ = _children(srv)
        os.kill(workers[0], signal.SIGKILL)  # mid-request, mid-write: no goodbye, its segment left open
        killed_at = len(done)
        wait_for(lambda: len(done) >= killed_at + 30, timeout=60)  # gunicorn replaces the worker; calls go on
    failed = [r for r in done if r.ended.startswith("http-")]
    # Requests in flight on the killed worker may fail (Twilio would retry them or use the fallback URL);
    # every other call is served, and every served call is recorded, once.
    assert len(failed) <= 4 and len(done) >= 40, (len(failed), len(done), [r.ended for r in failed])
    served = {r.call_sid for r in done if not r.ended.startswith("http-")}
    assert wait_for(lambda: count(db, Call, Call.call_sid.in_(served)) == len(served), timeout=15), \
        "the killed worker's spooled events must be written by the spool writer"
    more = _surge(srv.url, 5)  # and the server still serves
    assert all(r.ended == "hangup" for r in more)
    db.dispose()


def _gunicorn_master(srv) -> int:
    return srv.caller_master()  # below `ivr serve`: the pool whose children are the workers and the writer


def _children(srv) -> tuple[list[int], list[int]]:
    """The master's children: (gunicorn workers, `ivr background` spool writers)."""
    pgrep = subprocess.run(["pgrep", "-P", str(_gunicorn_master(srv))], capture_output=True, text=True)
    workers, writers = [], []
    for pid in map(int, pgrep.stdout.split()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        (writers if b"background" in cmdline else workers).append(pid)
    return workers, writers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_spool_writer_killed_mid_surge_is_restarted_and_loses_nothing(config, server):
    """Web workers never write to the database: one `ivr background` per server does. Killed with -9 in
    the middle of a batch, it is restarted by the master, resumes from its offsets, and every served call
    is recorded exactly once; meanwhile callers notice nothing."""
    srv = server(workers=2)
    db = Database(config.db_url)
    assert wait_for(lambda: _children(srv)[1], timeout=20), "ivr serve must start the spool writer"
    [writer] = _children(srv)[1]
    with _calls_keep_coming(srv.url) as done:
        assert wait_for(lambda: len(done) >= 20, timeout=60), "the surge never got going"
        os.kill(writer, signal.SIGKILL)
        killed_at = len(done)
        restarted = wait_for(lambda: [p for p in _children(srv)[1] if p != writer], timeout=20)
        assert restarted, "the master must restart the spool writer"
        assert wait_for(lambda: len(done) >= killed_at + 20, timeout=60)
    assert all(r.ended == "hangup" for r in done), {r.ended for r in done}  # callers noticed nothing
    served = {r.call_sid for r in done}
    assert wait_for(lambda: count(db, Call, Call.call_sid.in_(served)) == len(served), timeout=20)

    def events_per_call() -> dict:
        with db.read() as conn:
            return dict(conn.execute(select(CallEvent.call_sid, func.count())
                                     .where(CallEvent.call_sid.in_(served)).group_by(CallEvent.call_sid)).all())

    # Every call took the same path (1, then 9): each must have the same events, none missing. A call's row
    # comes with its first record; the rest may still be on their way from a writer catching up.
    wait_for(lambda: len(got := events_per_call()) == len(served) and len(set(got.values())) == 1, timeout=60)
    per_call = events_per_call()
    assert len(per_call) == len(served) and len(set(per_call.values())) == 1, set(per_call.values())
    assert next(iter(per_call.values())) >= len(done[0].requests)  # at least one event per webhook
    db.dispose()


def test_stopping_the_server_writes_everything_before_it_exits(config, server):
    """SIGTERM to the master: workers finish, then the spool writer drains what they spooled, then exits.
    Right after, with no process of the server left, every served call is in the database."""
    srv = server(workers=2)
    db = Database(config.db_url)
    wait_for(lambda: _children(srv)[1], timeout=20)
    workers, writers = _children(srv)
    done = _surge(srv.url, 40, workers=8)
    srv.proc.terminate()
    srv.proc.wait(30)
    assert not any(_alive(p) for p in workers + writers)
    served = {r.call_sid for r in done}
    assert count(db, Call, Call.call_sid.in_(served)) == len(served) == 40
    assert count(db, Call, Call.call_sid.in_(served), Call.outcome.is_not(None)) == 40
    assert not list((config.instance_path / "spool").glob("events-*")), "nothing may be left in the spool"
    db.dispose()


def test_a_server_killed_outright_leaves_no_writer_behind_and_loses_nothing(config, server):
    """kill -9 of the master: the workers and the writer notice their parent is gone; the writer drains
    the spool (the workers' segments included) and exits."""
    srv = server(workers=2)
    db = Database(config.db_url)
    wait_for(lambda: _children(srv)[1], timeout=20)
    workers, writers = _children(srv)
    done = _surge(srv.url, 20, workers=4)
    os.kill(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    assert wait_for(lambda: not any(_alive(p) for p in workers + writers), timeout=30), \
        "an orphaned writer or worker was left running"
    served = {r.call_sid for r in done}
    assert count(db, Call, Call.call_sid.in_(served)) == len(served) == 20
    db.dispose()


def test_garbage_rules_under_load_fail_no_call(config, server, rules_file):
    srv = server(workers=2)
    good = rules_file.read_text()
    results: list = []
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: results.extend(_surge(srv.url, 40, workers=4)))
        time.sleep(0.3)
        rules_file.write_text("menu: [this is: not {valid\n" + "\x00garbage" * 100)
        time.sleep(0.5)
        rules_file.write_text(good.replace("version: 1", "version: 7"))  # valid YAML, invalid rules
        future.result()
    assert len(results) == 40 and all(r.ended == "hangup" for r in results)
    assert all(r.said()[0].startswith("Thank you for calling") for r in results)


def test_logs_keep_no_secret_and_no_caller_number(config, server):
    srv = server(workers=2)
    _surge(srv.url, 5, keys=("0", "1"))  # callbacks booked too
    srv.stop()
    log = Path(srv.log_path).read_text()
    # the access log is there, in gunicorn's own format (ivr/ops/logs.py writes it for less)...
    assert re.search(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "POST /voice/incoming HTTP/1\.1" '
                     r'200 \d+ "-" "[^"]+"$', log, re.MULTILINE)
    assert AUTH_TOKEN not in log and config.secret_key not in log
    assert "5555550000" not in log and "+15555550001" not in log  # ...without caller numbers


def test_a_server_started_while_the_database_is_away_plays_the_hold_tone(config, server, db_url):
    """A server (re)started during a database outage serves callers from the last good snapshot; callers on
    hold hear the hold tone, which each worker makes at start into the server's media cache, not pauses."""
    if not db_url.startswith("sqlite"):
        pytest.skip("runs once, on the SQLite backend (the outage is a database server that is not there)")
    import shutil

    from ivr.media import audio
    from ivr.store.state import set_mode

    db = Database(config.db_url)
    set_mode(db, "live", reason="agents on shift", actor="ops")
    db.dispose()
    cache = str(config.media_cache_dir)
    first = server(workers=1, IVR_MEDIA_CACHE=cache)
    assert run_call(first.url, ["0"]).ended == "queued"  # its worker keeps the state in the snapshot file
    first.stop()
    shutil.rmtree(cache, ignore_errors=True)  # nothing left by the first server: the new one must make the tone itself
    away = server(workers=1, IVR_MEDIA_CACHE=cache,
                  DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=1")
    call = run_call(away.url, ["0"])
    assert call.ended == "queued", call.transcript()
    hold = call.documents[-1]  # Twilio's waitUrl document, fetched as the caller waits (the simulator's last)
    [tone_url] = [el.text for el in hold.iter("Play")]  # the tone, not a <Pause>
    resp = requests.get(away.url + urlsplit(tone_url).path, timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "audio/wav"
    tone = audio.decode(resp.content)
    assert len(tone) > 5000 and tone.dBFS > -40  # seconds of the tone itself, not silence


def _served_fully(result) -> bool:
    """A caller who heard the announcement and was offered the menu, and whose call ended normally."""
    from ivr.store.seed import DEFAULT_TEXTS

    return (result.ended == "hangup" and DEFAULT_TEXTS["en"]["main"] in result.said()
            and any(d.find("Gather") is not None for d in result.documents))


def test_a_locked_sqlite_database_mid_calls_serves_callers_and_records_them_after(config, server, db_url):
    """Another process holds SQLite's write lock for 8 s, longer than every busy timeout (a long import, a
    migration, a stuck admin shell). In WAL mode readers are never shut out, so calls go on under gunicorn,
    answered promptly; the spool writer's batches fail and are retried, and every call answered during the
    lock is recorded once it is gone. (An exclusive lock on the whole file cannot even be taken while the
    hotline has the database open: WAL connections hold a shared lock for their lifetime.)"""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's file lock; the PostgreSQL outage is the restart test")
    import sqlite3

    from sqlalchemy.engine import make_url

    srv = server(workers=2)
    assert _served_fully(run_call(srv.url, ["9"]))  # each worker has read the state at least once...
    _surge(srv.url, 6, workers=2, keys=("9",))  # ...on both workers
    locker = sqlite3.connect(make_url(config.db_url).database, timeout=10, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    locker.execute("UPDATE hotline_state SET updated_by = updated_by")  # holds the write lock
    try:
        during, slowest = [], 0.0
        until = time.monotonic() + 8
        while time.monotonic() < until:
            started = time.monotonic()
            during.append(run_call(srv.url, ["1", "9"], caller=f"+1555777{len(during):04d}"))
            slowest = max(slowest, time.monotonic() - started)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert len(during) >= 4 and all(_served_fully(r) for r in during), [r.ended for r in during]
    assert slowest < 5.0, f"a call of 4 webhooks took {slowest:.1f} s under the lock"
    db = Database(config.db_url)
    served = {r.call_sid for r in during}
    log = srv.log_path.read_text()
    assert "database write failed" in log, "the writer must have met the lock (else this test proves nothing)"
    assert wait_for(lambda: count(db, Call, Call.call_sid.in_(served)) == len(served), timeout=30), \
        "calls answered during the lock must be recorded once it is released"
    db.dispose()


def _pg_restart_command() -> list[str] | None:
    import shutil

    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart", "-m", "fast"] \
        if versions else None


def test_postgresql_restarted_under_load_loses_no_call(config, server, db_url):
    """The database server restarts (a failover, a minor upgrade) while calls come in. No caller gets an
    error: during the outage they hear the last good announcement and menu; afterwards the workers LISTEN
    again (a mode switch reaches the next call), and every call answered before, during and after it is
    recorded once."""
    if not db_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: set DATABASE_URL" if not PG_URL else "runs once, on the PostgreSQL backend")
    restart = _pg_restart_command()
    if restart is None:
        pytest.skip("restarting the local PostgreSQL needs root and pg_ctlcluster (CI has both)")
    from ivr.store.state import set_mode

    srv = server(workers=2)
    with _calls_keep_coming(srv.url, batch=6, workers=3) as done:
        assert wait_for(lambda: len(done) >= 12, timeout=60), "the load never got going"
        before = len(done)
        subprocess.run(restart, check=True, capture_output=True, timeout=60)
        subprocess.run(["pg_isready", "-h", "127.0.0.1", "-t", "30"], check=True, capture_output=True)
        from ivr.ops.cli import context as cli_mod

        for database in cli_mod._DATABASES.values():  # this test process's own pools died too
            database.dispose()
        assert wait_for(lambda: len(done) >= before + 24, timeout=60)
    assert all(r.ended == "hangup" for r in done), {r.ended for r in done}
    db = Database(config.db_url)
    served = {r.call_sid for r in done}
    assert wait_for(lambda: count(db, Call, Call.call_sid.in_(served)) == len(served), timeout=30), \
        "calls answered around the restart must all be recorded"
    set_mode(db, "live", reason="agents in after the restart", actor="ops")
    assert run_call(srv.url, ["0"]).ended == "queued", "after the restart a mode switch must reach the next call"
    db.dispose()
