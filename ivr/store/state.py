"""The hotline's state as every webhook sees it: the mode and the published content.

A change of mode or content must reach the very next webhook in every worker of every server. A webhook
reads the one-row `hotline_state` table again only when something may have changed, when the row was last
read more than a second ago (TRUST_S: the bound on staleness should a signal be missed), or when the
signal is not working. The signal: on PostgreSQL each worker process keeps a LISTEN connection: a trigger
on `hotline_state` (migration 0006) and the code that changes it send NOTIFY, which PostgreSQL hands to
every listening session as part of the commit; a webhook polls that socket without blocking (one recv, no
round trip). On SQLite the WAL index's header, which every commit by any writer moves
(ivr/store/wal_watch.py): one 48-byte pread, no query.
The content (active incident, published announcements) is reloaded only when its version number changes.
The last good snapshot is kept in memory and in a file, so callers still hear the announcement when the
database cannot be reached.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from sqlalchemy import Connection, select, update

from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.store.audit import audit
from ivr.store.db import Database, after_commit
from ivr.store.files import write_atomically
from ivr.store.models import MODES, Announcement, HotlineState, utcnow
from ivr.store.reads import active_incident
from ivr.store.wal_watch import WalWatch

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 2.0  # after a failed read, serve the snapshot for this long before trying again
STATE_CHANNEL = "ivr_state"  # NOTIFY channel of changes to hotline_state (PostgreSQL)
TRUST_S = 1.0  # with LISTEN working, still read the row at least this often: a link can die silently
SQLITE_STATE_BUSY_MS = 250  # how long a webhook's state read waits for a locked SQLite database
WATCH_RETRY_S = 2.0  # after the LISTEN connection failed, read the row per request this long, then reconnect


def load_content(conn: Connection, version: int) -> Content:
    """Read the active incident and its published announcements."""
    incident = active_incident(conn)
    if incident is None:
        return Content(version=version)
    rows = conn.execute(
        select(Announcement.language, Announcement.topic, Announcement.text, Announcement.media_sha256,
               Announcement.version, Announcement.source, Announcement.published_at, Announcement.duration_ms)
        .where(Announcement.incident_id == incident.id, Announcement.status == "published")
    ).all()
    spoken = {f"{r.language}/{r.topic}": Spoken(r.text, r.media_sha256, r.version, _source(r),
                                                 r.published_at.timestamp() if r.published_at else None,
                                                 r.duration_ms) for r in rows}
    return Content(version, incident.id, incident.title, incident.severity, spoken)


def _source(row) -> str:
    """Where an announcement came from. The setup's placeholder wording counts as "default" however it got
    there (published, or carried over before copies and the seed were marked), unless marked a carried-over
    copy, which says more."""
    from ivr.store.incidents import CARRIED_OVER  # both modules import this one
    from ivr.store.seed import DEFAULT_SOURCE, DEFAULT_TEXTS

    default = row.text and row.text == DEFAULT_TEXTS.get(row.language, {}).get(row.topic)
    return DEFAULT_SOURCE if default and row.source != CARRIED_OVER else row.source


class StateWatch:
    """PostgreSQL: this process's LISTEN connection on the state channel, asked before every webhook whether
    `hotline_state` may have changed since the last time. Polling costs one non-blocking recv on a local
    socket; it never waits for the server. Opening the connection happens in a short-lived thread, never in
    a webhook: a database that does not answer must not hold a caller for the connect timeout."""

    def __init__(self, db: Database):
        self.db = db
        self._lock = threading.Lock()
        self._conn = None
        self._pid = 0
        self._retry_at = 0.0
        self._connecting = False
        self._fresh = False  # just connected: changes made before LISTEN are unknown, so read once
        self._generation = 0  # bumped by close(): a connect finishing after it is thrown away
        self.connects = 0  # LISTEN connections opened (tests and diagnostics)

    @property
    def listening(self) -> bool:
        return self._conn is not None and self._pid == os.getpid()

    def changed(self) -> bool:
        """False only when the LISTEN connection is up and nothing arrived on it since the last call; True
        means "read the row": a notification came, the connection just (re)opened, or it is not working."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connection (psycopg leaves it alone in a child)
                self._conn, self._connecting, self._pid = None, False, os.getpid()
            if self._conn is None:
                if not self._connecting and time.monotonic() >= self._retry_at:
                    self._connecting = True
                    threading.Thread(target=self._connect, args=(self._generation,), name="state-listen",
                                     daemon=True).start()
                return True
            try:
                pgconn = self._conn.pgconn
                # libpq's socket is non-blocking: this never waits. Twice, because a server that ends the
                # session sends an error message and then closes: the first call reads the message, which
                # libpq drops while idle, and only the second sees the connection closed.
                pgconn.consume_input()
                pgconn.consume_input()
                got, self._fresh = self._fresh, False
                while pgconn.notifies() is not None:
                    got = True
                if pgconn.status != 0:  # CONNECTION_OK is 0
                    raise OSError("the LISTEN connection is not OK")
                return got
            except Exception as exc:
                log.warning("state LISTEN connection lost, reading the state per request until it is back: %s",
                            exc)
                self._drop()
                return True

    def _open(self):
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True, connect_timeout=3,
                               options=self.db.timeouts.options())
        conn.execute(f"LISTEN {STATE_CHANNEL}")
        return conn

    def _connect(self, generation: int) -> None:
        try:
            conn = self._open()
        except Exception as exc:
            log.warning("cannot LISTEN for state changes (will read the state per request): %s", exc)
            with self._lock:
                self._retry_at = time.monotonic() + WATCH_RETRY_S
                self._connecting = False
            return
        with self._lock:
            self._connecting = False
            if generation != self._generation or self._conn is not None:
                conn.close()  # closed (or swapped) while we were connecting
                return
            self._conn, self._pid, self._fresh = conn, os.getpid(), True
            self.connects += 1

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._retry_at = time.monotonic() + WATCH_RETRY_S
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._lock:
            self._generation += 1
            if self._pid == os.getpid():
                self._drop()
            self._conn = None
            self._retry_at = 0.0


_changes_here = 0  # state changes committed by this process: its own readers need no notification


def _changed_here() -> None:
    global _changes_here
    _changes_here += 1


def notify_state_changed(conn: Connection) -> None:
    """Inside a `Database.write()` transaction that changed hotline_state: every reader of this process
    reads the state again once it commits (deterministically: a console or API request in a worker, then
    that worker's next webhook); every LISTENing worker elsewhere is woken by NOTIFY at commit. The trigger
    of migration 0006 does the same for any other writer; PostgreSQL folds the two into one notification."""
    after_commit(conn, _changed_here)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {STATE_CHANNEL}")


class StateReader:
    """Per-process reader of the hotline state, with the last good snapshot as a safety net."""

    def __init__(self, db: Database, snapshot_file: Path):
        self.db = db
        self.snapshot_file = snapshot_file
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._retry_at = 0.0
        self._local = threading.local()
        self.watch = WalWatch(db) if db.is_sqlite else StateWatch(db)  # what says the row may have changed
        self._trusted_until = 0.0  # monotonic time until which the cached state stands unless notified
        self._seen_here = -1  # _changes_here as of the last read
        self.reads = 0  # state rows read from the database by this reader
        self.mode_override: str | None = None  # `ivr simulate --all-paths` walks both modes in its own process

    def current(self) -> Snapshot:
        """The state for this request: fresh from the database, or the last good one if it cannot be read."""
        if self.mode_override:
            snap = self._current()
            return Snapshot(self.mode_override, snap.content, snap.fresh)
        return self._current()

    def _current(self) -> Snapshot:
        now = time.monotonic()
        if now < self._retry_at:
            return self.last_good()
        watch = self.watch
        if watch is not None:
            if watch.db is not self.db:  # the database was swapped under us (tests do this): follow it
                watch.close()
                watch.db = self.db
            unchanged = not watch.changed()
            last = self._last
            if unchanged and last is not None and now < self._trusted_until and self._seen_here == _changes_here:
                return last
        seen_here = _changes_here
        try:
            try:
                snap = self._read()
            except Exception:
                if not self._had_connection or self.db.is_sqlite:
                    raise
                # The connection that worked until now broke (a database restart, a failover): one more
                # try on a new one, so a database that is back is not taken for down for a while.
                self._had_connection = False
                self.db.engine.dispose()  # its pooled connections died the same way: start afresh
                snap = self._read()
        except Exception as exc:  # any database failure: the caller must still be served
            log.error("hotline state unreadable, serving the last good snapshot: %s", exc)
            self._retry_at = time.monotonic() + RETRY_AFTER_FAILURE_S
            self._trusted_until = 0.0
            return self.last_good()
        self._retry_at = 0.0
        self._seen_here = seen_here
        # LISTEN was in place before this read: any later change will arrive as a notification.
        self._trusted_until = now + TRUST_S if watch is not None and watch.listening else 0.0
        return snap

    def _state_row(self):
        """One autocommit SELECT on this thread's own connection: a single round trip per webhook (a pooled
        connection would add the pool's reset-on-return ROLLBACK, and a transaction its BEGIN)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid() or self._local.db is not self.db:
            if conn is not None and self._local.pid == os.getpid():
                self.close()  # the database changed under us (tests do this): let the old connection go
            raw = self.db.engine.raw_connection()
            if self.db.is_sqlite:
                # A caller must not wait out the writers' 5 s busy timeout: a database locked for longer
                # than this is answered from the last good snapshot.
                raw.dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_STATE_BUSY_MS}")
            else:
                raw.dbapi_connection.autocommit = True
            raw.detach()  # ours for good: never handed back to the pool, never reset by it
            conn, self._local.conn, self._local.pid, self._local.db = raw, raw, os.getpid(), self.db
        try:
            cur = conn.cursor()
            cur.execute("SELECT mode, content_version FROM hotline_state WHERE id = 1")
            row = cur.fetchone()
            cur.close()
            return row
        except Exception:
            self._local.conn = None  # a broken connection is replaced on the next request
            try:
                conn.close()
            except Exception:
                pass
            raise

    def close(self) -> None:
        """Close this thread's state connection and this process's LISTEN connection."""
        if self.watch is not None:
            self.watch.close()
        self._trusted_until = 0.0
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    @property
    def _had_connection(self) -> bool:
        return getattr(self._local, "worked", False)

    @_had_connection.setter
    def _had_connection(self, value: bool) -> None:
        self._local.worked = value

    def _read(self) -> Snapshot:
        self.reads += 1
        row = self._state_row()
        self._had_connection = True
        if row is None:
            raise RuntimeError("hotline_state has no row: run `ivr db upgrade`")
        mode, version = row
        last = self._last
        if last is not None and last.content.version == version:
            content = last.content
        else:
            with self.db.read() as conn:
                content = load_content(conn, version)
        snap = Snapshot(mode, content)
        if last is None or last.mode != mode or last.content is not content:
            self._keep(snap)
        return snap

    def _keep(self, snap: Snapshot) -> None:
        with self._lock:
            self._last = snap
            try:
                write_atomically(self.snapshot_file, json.dumps({"mode": snap.mode, "content": snap.content.to_json()}))
            except OSError as exc:
                log.warning("could not write the last-good snapshot file: %s", exc)

    def last_good(self) -> Snapshot:
        """The last state read from the database: from memory, else from the file, else a safe default."""
        if self._last is not None:
            return Snapshot(self._last.mode, self._last.content, fresh=False)
        try:
            data = json.loads(self.snapshot_file.read_text())
            snap = Snapshot(data["mode"], Content.from_json(data["content"]), fresh=False)
        except (OSError, ValueError, KeyError, TypeError):
            return Snapshot("message", Content(), fresh=False)
        self._last = Snapshot(snap.mode, snap.content)
        return snap


def get_mode(db: Database) -> tuple[str, object, str]:
    """The current mode, when it was set and by whom."""
    with db.read() as conn:
        row = conn.execute(select(HotlineState.mode, HotlineState.updated_at, HotlineState.updated_by)
                           .where(HotlineState.id == 1)).one()
    return row.mode, row.updated_at, row.updated_by


def check_mode_change(mode: str, reason: str | None) -> None:
    """A mode switch names a known mode and says why (ValueError otherwise), before anything else is asked."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not reason or not reason.strip():
        raise ValueError("a reason is required: the audit log must say why the mode changed")


def set_mode(db: Database, mode: str, *, reason: str, actor: str) -> tuple[str, str]:
    """Switch the whole hotline between message and live; audited. Returns (from, to)."""
    check_mode_change(mode, reason)
    with db.write() as conn:
        current = conn.execute(select(HotlineState.mode).where(HotlineState.id == 1).with_for_update()).scalar_one()
        if current == mode:
            return current, mode
        conn.execute(update(HotlineState).where(HotlineState.id == 1)
                     .values(mode=mode, updated_at=utcnow(), updated_by=actor))
        audit(conn, actor=actor, action="mode.set", subject="hotline", from_value=current, to_value=mode,
              reason=reason.strip())
        notify_state_changed(conn)
    return current, mode


def bump_content(conn: Connection) -> None:
    """Tell every worker that published content changed (they reload it on their next request)."""
    conn.execute(update(HotlineState).where(HotlineState.id == 1)
                 .values(content_version=HotlineState.content_version + 1))
    notify_state_changed(conn)
