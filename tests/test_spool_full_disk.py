"""No silent loss, under `ivr serve`: the spool's filesystem full in the middle of calls, and a callback asked
for while the database is away. Every record reaches the database, or is counted as lost and /healthz says so."""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from conftest import AUTH_TOKEN
from helpers import wait_for
from test_agent_desk import Browser
from ivr.store import queues
from ivr.store.db import Database
from ivr.store.models import CallEvent
from ivr.store.users import add_user
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow
KEYS = ("1", "9")  # every call takes the same path: the same number of records each


def _calls(url: str, n: int, first: int = 0, keys=KEYS) -> list:
    def one(i):
        return SimulatedCall(HttpTransport(url), AUTH_TOKEN, keys=list(keys), caller=f"+1202555{i:04d}").run()

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(first, first + n)))


def _events(db, sids) -> int:
    with db.read() as conn:
        return conn.execute(select(func.count()).select_from(CallEvent).where(CallEvent.call_sid.in_(sids))).scalar()


def _records_per_call(db, calls) -> int:
    """How many events one call of KEYS leaves, once the writer has written the warm-up calls."""
    sids = {r.call_sid for r in calls}
    assert wait_for(lambda: _events(db, sids) > 0 and _events(db, sids) % len(sids) == 0, timeout=20)
    before = -1
    while (now := _events(db, sids)) != before:
        before = now
        time.sleep(1.0)
    return now // len(sids)


@pytest.fixture
def small_spool(config):
    """The instance's spool folder on a 4 MB tmpfs of its own (unmounted afterwards)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full spool filesystem needs root to mount a small tmpfs")
    spool = config.instance_path / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(spool)], check=True)
    try:
        yield spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)


def _fill(spool) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={spool / 'filler'}", "bs=64k"], capture_output=True)
    assert shutil.disk_usage(spool).free < 64 << 10


def _health(srv) -> dict:
    return requests.get(srv.url + "/healthz", timeout=5).json()


def _dashboard_says(srv, db) -> str:
    """What the console's dashboard says about call records, to a viewer signed in as a browser would."""
    add_user(db, "vera", "viewer", actor="test", password="a long viewer password")
    web = Browser(srv.staff_url)
    web.login("vera", "a long viewer password")
    found = re.search(r'id="spool-problem"[^>]*>([^<]*)<', web.get("/console/").text)
    return found.group(1) if found else ""


def _metric(srv, name: str, having: str = "") -> float:
    body = requests.get(srv.staff_url + "/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith(name) and having in line)


def test_a_full_spool_disk_loses_no_call_record(config, server, small_spool):
    """The disk fills while calls come in: the workers write into the space their segments reserved, so
    callers notice nothing, every record reaches the database, and nothing is counted lost."""
    srv = server(workers=2)
    db = Database(config.db_url)
    per_call = _records_per_call(db, _calls(srv.url, 4))
    _fill(small_spool)
    done = _calls(srv.url, 60, first=100)
    assert all(r.ended == "hangup" for r in done), {r.ended for r in done}
    sids = {r.call_sid for r in done}
    assert wait_for(lambda: _events(db, sids) == per_call * len(done), timeout=30), (_events(db, sids), per_call)
    assert _health(srv)["problems"] == [] and _metric(srv, "ivr_spool_records_lost_total") == 0
    db.dispose()


def test_past_the_reserve_and_the_memory_bound_every_lost_record_is_counted(config, server, small_spool):
    """With almost no reserve and little memory, records are held, then dropped: each one dropped is
    counted, /healthz is degraded within seconds, and once space returns the held ones arrive: the records
    in the database and the records counted lost add up to every record the calls made."""
    srv = server(workers=2, IVR_SPOOL_RESERVE_BYTES="4096", IVR_SPOOL_MEMORY_BYTES="16384",
                 IVR_SPOOL_BACKLOG_ALERT_S="3")
    db = Database(config.db_url)
    per_call = _records_per_call(db, _calls(srv.url, 2))
    _fill(small_spool)
    done = _calls(srv.url, 60, first=100)
    assert all(r.ended == "hangup" for r in done), {r.ended for r in done}  # callers notice nothing
    assert wait_for(lambda: "records lost" in " ".join(_health(srv)["problems"]), timeout=5), _health(srv)
    lost = _metric(srv, "ivr_spool_records_lost_total", 'record="event"')
    assert lost > 0 and _metric(srv, "ivr_spool_held_records") > 0  # some dropped, some waiting in memory
    assert wait_for(lambda: "waiting to reach the database" in " ".join(_health(srv)["problems"]), timeout=10)
    assert "records lost" in _dashboard_says(srv, db)  # the console says what /healthz says
    (small_spool / "filler").unlink()  # space returns: what the workers held is spooled, then written
    sids = {r.call_sid for r in done}
    assert wait_for(lambda: _events(db, sids) + lost == per_call * len(done), timeout=30), \
        (_events(db, sids), lost, per_call * len(done))
    assert _metric(srv, "ivr_spool_held_records") == 0
    assert _metric(srv, "ivr_spool_records_lost_total", 'record="event"') == lost
    db.dispose()


@contextmanager
def _database_away(db_url: str):
    """SQLite: another process holds the write lock. PostgreSQL: the database refuses connections and its
    sessions are ended. Either way reads of the last good snapshot go on and every write fails."""
    if db_url.startswith("sqlite"):
        locker = sqlite3.connect(make_url(db_url).database, timeout=10, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")
        locker.execute("UPDATE hotline_state SET updated_by = updated_by")
        try:
            yield
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        return
    url = make_url(db_url)
    admin = Database(url.set(database="postgres").render_as_string(hide_password=False))
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS false'))
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                     {"d": url.database})
        try:
            yield
        finally:
            conn.execute(text(f'ALTER DATABASE "{url.database}" WITH ALLOW_CONNECTIONS true'))
    admin.dispose()


def test_a_callback_asked_for_while_the_database_is_away_is_promised_and_kept(config, server, db_url):
    """Message mode, key 0 then 1: the caller is promised a callback. With the database away the promise is
    the same, and the callback is stored, once, when the database is back."""
    srv = server(workers=2, IVR_SPOOL_BACKLOG_ALERT_S="2")
    normal = _calls(srv.url, 1, keys=("0", "1"))[0].said()[-1]
    assert normal.startswith("Thank you. We will call you back"), normal
    with _database_away(config.db_url):
        away = _calls(srv.url, 2, first=50, keys=("0", "1"))
        assert [r.said()[-1] for r in away] == [normal, normal], [r.transcript() for r in away]
        # Meanwhile the records wait, and the probe and the metrics say so.
        assert wait_for(lambda: "waiting to reach the database" in " ".join(_health(srv)["problems"]), timeout=20)
        assert _metric(srv, "ivr_spool_backlog_records") > 0
        assert _metric(srv, "ivr_spool_oldest_unwritten_age_seconds") > 2
    db = Database(config.db_url)
    sids = {r.call_sid for r in away}
    assert wait_for(lambda: {c["call_sid"] for c in queues.callbacks(db)} >= sids, timeout=30), \
        "the callbacks promised while the database was away must be stored when it is back"
    assert len(queues.callbacks(db)) == 3 and wait_for(lambda: _health(srv)["problems"] == [], timeout=20)
    db.dispose()
