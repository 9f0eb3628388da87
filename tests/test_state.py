"""The hotline state each webhook sees: a change reaches the very next request, whoever made it, and a worker
does not go to the database at all while nothing changed (PostgreSQL: LISTEN/NOTIFY; SQLite: the WAL
index's header), and reads it at least once a second whatever the signal says."""
from __future__ import annotations

import select
import time

import pytest
from sqlalchemy import text

from helpers import approved
from ivr.store import state as state_mod
from ivr.store.db import Database
from ivr.store.state import StateWatch, set_mode


def settle(reader) -> None:
    """PostgreSQL: let this reader's LISTEN connection open (in a thread of its own, never in a webhook)
    and take it into use with one read. SQLite: one read."""
    reader.current()
    if reader.watch is not None:
        deadline = time.monotonic() + 5
        while not reader.watch.listening and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.watch.listening, "the LISTEN connection never opened"
        reader.current()


def delivered(reader) -> None:
    """On PostgreSQL, wait until the NOTIFY of a commit has reached this reader's LISTEN socket (PostgreSQL
    hands it over just after the commit returns: well under a millisecond on this machine). SQLite: nothing."""
    watch = reader.watch
    if isinstance(watch, StateWatch) and watch.listening:
        select.select([watch._conn.pgconn.socket], [], [], 2.0)


def _other_writer(db_url: str, sql: str) -> None:
    """A change made outside the hotline's code, by another connection (a DBA's UPDATE during an incident)."""
    db = Database(db_url)
    try:
        with db.write() as conn:
            conn.execute(text(sql))
    finally:
        db.dispose()


def test_a_change_by_any_writer_reaches_the_next_request(hotline, db_url):
    reader = hotline.state
    assert reader.current().mode == "message"
    set_mode(hotline.db, "live", reason="agents in", actor="test")
    delivered(reader)
    assert reader.current().mode == "live"
    _other_writer(db_url, "UPDATE hotline_state SET mode = 'message' WHERE id = 1")
    delivered(reader)
    assert reader.current().mode == "message"
    _other_writer(db_url, "UPDATE incidents SET title = 'Renamed' WHERE status = 'active'")
    _other_writer(db_url, "UPDATE hotline_state SET content_version = content_version + 1 WHERE id = 1")
    delivered(reader)
    assert reader.current().content.incident_title == "Renamed"


def test_the_call_path_hears_a_manual_sql_change_at_once(hotline, place_call, db_url):
    """Followed as Twilio would: a caller pressing 0 in message mode is told agents are away; one SQL UPDATE
    later the very next caller is queued."""
    first = place_call(keys=["0"])
    assert first.ended != "queued" and all(d.find("Enqueue") is None for d in first.documents)
    _other_writer(db_url, "UPDATE hotline_state SET mode = 'live' WHERE id = 1")
    delivered(hotline.state)
    second = place_call(keys=["0"])
    assert second.ended == "queued" and any(d.find("Enqueue") is not None for d in second.documents)


@pytest.fixture
def pg_hotline(hotline):
    if hotline.db.is_sqlite:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    return hotline


def test_workers_do_not_read_the_row_while_nothing_changes(hotline):
    reader = hotline.state
    settle(reader)
    before = reader.reads
    for _ in range(200):
        assert reader.current().mode == "message"
    assert reader.reads == before  # 200 webhooks, no query for the state
    set_mode(hotline.db, "live", reason="agents in", actor="test")
    delivered(reader)
    assert reader.current().mode == "live"
    assert reader.reads == before + 1


def test_sqlite_a_commit_by_another_process_is_seen_by_the_next_request(hotline, db_url):
    """The WAL index is shared by every process on the database: a commit made elsewhere (here: a sqlite3
    shell's, which knows nothing of the hotline) makes the next request read the row, with no clock."""
    import subprocess
    import sys

    if not hotline.db.is_sqlite:
        pytest.skip("SQLite's WAL index")
    reader = hotline.state
    settle(reader)
    path = hotline.db.engine.url.database
    subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                    "c.execute(\"UPDATE hotline_state SET mode = 'live' WHERE id = 1\"); c.commit()", path],
                   check=True)
    before = reader.reads
    assert reader.current().mode == "live"
    assert reader.reads == before + 1


def test_the_row_is_read_again_after_the_trust_window(hotline, monkeypatch):
    """A signal can be missed (PostgreSQL: a LISTEN link dead without a sign, a network partition; SQLite: a
    `-shm` file replaced under us): the row is still read once a second, the bound on staleness."""
    reader = hotline.state
    monkeypatch.setattr(state_mod, "TRUST_S", 0.05)
    reader.close()  # the app's first read trusted its answer for the full second
    settle(reader)
    before = reader.reads
    time.sleep(0.1)
    reader.current()
    assert reader.reads == before + 1


def test_a_lost_listen_connection_falls_back_to_reading_then_reconnects(pg_hotline, db_url, monkeypatch):
    monkeypatch.setattr(state_mod, "WATCH_RETRY_S", 0.2)
    reader = pg_hotline.state
    settle(reader)
    backend = reader.watch._conn.info.backend_pid
    _other_writer(db_url, f"SELECT pg_terminate_backend({backend})")
    time.sleep(0.05)
    # A change made while nothing listens is still seen by the next request: it reads the row.
    _other_writer(db_url, "UPDATE hotline_state SET mode = 'live' WHERE id = 1")
    assert reader.current().mode == "live"
    assert not reader.watch.listening
    reads = reader.reads
    reader.current()
    assert reader.reads == reads + 1  # still reading per request until LISTEN is back
    time.sleep(0.25)
    settle(reader)  # reconnects (in its thread), then reads once: changes before LISTEN are unknown
    assert reader.watch.connects == 2
    reads = reader.reads
    reader.current()
    assert reader.reads == reads
    _other_writer(db_url, "UPDATE hotline_state SET mode = 'message' WHERE id = 1")
    delivered(reader)
    assert reader.current().mode == "message"


def test_a_database_that_refuses_listen_connections_still_serves_fresh_state(pg_hotline, monkeypatch):
    import psycopg

    reader = pg_hotline.state

    def refuse():
        raise psycopg.OperationalError("too many connections")

    monkeypatch.setattr(reader.watch, "_open", refuse)
    reader.close()
    assert reader.current().mode == "message"
    assert not reader.watch.listening
    set_mode(pg_hotline.db, "live", reason="agents in", actor="test")
    assert reader.current().mode == "live"


def test_the_incoming_webhook_follows_the_content_under_notify(pg_hotline, place_call):
    """The caller hears new text as soon as the content version moves, with no request in between."""
    assert "We were breached on Monday." not in " ".join(place_call().said())
    _other_writer(pg_hotline.config.database_url,
                  "UPDATE announcements SET text = 'We were breached on Monday.', media_sha256 = NULL "
                  "WHERE status = 'published' AND language = 'en' AND topic = 'main'")
    _other_writer(pg_hotline.config.database_url,
                  "UPDATE hotline_state SET content_version = content_version + 1 WHERE id = 1")
    delivered(pg_hotline.state)
    assert "We were breached on Monday." in " ".join(place_call().said())


def test_connections_broken_by_a_database_restart_are_replaced_at_once(pg_hotline, db_url):
    """Every session of the hotline ends at once (what a restart or failover does): the next webhook still
    gets the state fresh from the database, not the snapshot kept for a database that is down."""
    reader = pg_hotline.state
    settle(reader)
    _other_writer(db_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    time.sleep(0.05)
    _other_writer(db_url, "UPDATE hotline_state SET mode = 'live' WHERE id = 1")
    snap = reader.current()
    assert snap.fresh and snap.mode == "live"


def test_a_change_made_by_this_process_reaches_its_next_webhook_without_waiting(hotline, monkeypatch):
    """The console or API in a worker flips the mode; that worker's very next webhook must see it, whether
    or not PostgreSQL's notification has arrived yet (here it never does)."""
    from ivr.store import announcements

    reader = hotline.state
    assert reader.current().mode == "message"
    if reader.watch is not None:
        monkeypatch.setattr(reader.watch, "changed", lambda: False)  # NOTIFY lost or late
    set_mode(hotline.db, "live", reason="agents in", actor="test")
    assert reader.current().mode == "live"
    before = reader.current().content.version
    approved(hotline.db, announcements.create_from_text(hotline.db, hotline.config, {"en": None, "es": None},
                                                        lang="en", topic="main", text="New facts about the breach.",
                                                        actor="test", publish=True))
    after = reader.current()
    assert after.content.version != before
    assert after.content.find("en", "main", "en")[0].text == "New facts about the breach."


def test_a_change_rolled_back_notifies_no_one(hotline, monkeypatch):
    from ivr.store.state import notify_state_changed

    reader = hotline.state
    reader.current()
    reads = reader.reads
    if reader.watch is not None:
        monkeypatch.setattr(reader.watch, "changed", lambda: False)
    with pytest.raises(RuntimeError):
        with hotline.db.write() as conn:
            notify_state_changed(conn)
            raise RuntimeError("the change fails half-way")
    reader.current()
    assert reader.reads == reads + (1 if reader.watch is None else 0)  # SQLite reads every time anyway


def test_a_database_that_does_not_answer_never_holds_a_webhook_on_the_listen_connect(pg_hotline, monkeypatch):
    """Opening the LISTEN connection can take the connect timeout (a firewalled or hung server): it happens
    beside the webhooks, which meanwhile read the state row as before."""
    import threading

    reader = pg_hotline.state
    reader.close()
    before = reader.watch.connects  # the app read the state once at start (ivr/ops/health.py)
    release = threading.Event()
    original = reader.watch._open

    def hung():
        release.wait(10)
        return original()

    monkeypatch.setattr(reader.watch, "_open", hung)
    started = time.monotonic()
    for _ in range(5):
        assert reader.current().fresh
    assert time.monotonic() - started < 1.0 and not reader.watch.listening
    release.set()
    settle(reader)
    assert reader.watch.connects - before == 1
