"""Database access: one engine per process, SQLite tuned for several workers, PostgreSQL through psycopg 3.

Every PostgreSQL connection the hotline opens carries a `statement_timeout` and a `lock_timeout`, sized for
the process that opens it (`DbTimeouts`; settings in docs/configuration.md): a web worker gives up quickly
and answers the caller from the snapshot, `ivr background` and the CLI wait longer. Nothing then waits
forever behind a migration's or a VACUUM FULL's lock. SQLite's equivalent is the busy timeout.

Writes go through `Database.write()` (or a session from `Database.session()`): on SQLite they take the write
lock up front with BEGIN IMMEDIATE, because a DEFERRED transaction that reads and then writes fails with
"database is locked" under two workers whatever the busy timeout (measured: 41-77% of requests).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from ivr.store.private_files import create_private

BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class DbTimeouts:
    """PostgreSQL's statement_timeout and lock_timeout for every connection of one process, in ms."""

    statement_ms: int
    lock_ms: int

    def options(self) -> str:
        """libpq's `options`: set at connect, so they cost no round trip per transaction."""
        return f"-c statement_timeout={int(self.statement_ms)} -c lock_timeout={int(self.lock_ms)}"


# Web workers: a webhook's reads wait 1 s for a lock at most, then the caller is served from the snapshot.
REQUESTS = DbTimeouts(statement_ms=5000, lock_ms=1000)
# `ivr background` and the CLI: a batch of call records may wait longer; it is retried if it times out.
BACKGROUND = DbTimeouts(statement_ms=30000, lock_ms=5000)


def normalize_url(url: str) -> str:
    """Accept the usual postgres:// and postgresql:// spellings and use psycopg 3 for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, timeouts: DbTimeouts = BACKGROUND, pre_ping: bool = False) -> Engine:
    """Create an engine; for SQLite: WAL, a busy timeout, and explicit BEGINs that we control."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping for webhooks (`ivr` commands ask for it): it would double the round trips of every
        # webhook's state read. A connection that died with a database restart fails once; the webhook serves
        # the last good snapshot, and the pool replaces it. connect_timeout keeps a dead server from holding a
        # caller for long.
        # The timeouts join any `options` the URL gives (connect_args would replace them, and with them a
        # setting the operator chose, such as default_transaction_read_only).
        options = " ".join(filter(None, [parsed.query.get("options"), timeouts.options()]))
        return create_engine(url, pool_pre_ping=pre_ping, pool_recycle=300, pool_size=5, max_overflow=10,
                             connect_args={"connect_timeout": 3, "options": options})
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        create_private(Path(parsed.database))  # 0600 whatever the umask; SQLite gives -wal/-shm the same mode
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own handling is wrong for this).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # NORMAL in WAL mode survives a process crash; only an OS crash can lose the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Freed pages are zeroed, not left with what was deleted (a removed number, a scrubbed payload).
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        mode = "IMMEDIATE" if conn.get_execution_options().get("ivr_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


AFTER_COMMIT = "ivr_after_commit"


def after_commit(conn: Connection, fn) -> None:
    """Run fn after the `Database.write()` transaction of conn commits (not at all if it rolls back)."""
    conn.info.setdefault(AFTER_COMMIT, []).append(fn)


class Database:
    """The engine plus the two ways in: reads, and writes that take the lock up front."""

    def __init__(self, url: str, timeouts: DbTimeouts = BACKGROUND, pre_ping: bool = False):
        self.url = normalize_url(url)
        self.timeouts = timeouts
        self.engine = make_engine(self.url, timeouts, pre_ping)
        self.writer = self.engine.execution_options(ivr_write=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; functions queued with `after_commit(conn, fn)` run once it has committed."""
        with self.writer.connect() as conn:
            try:
                with conn.begin():
                    yield conn
            finally:
                hooks = conn.info.pop(AFTER_COMMIT, None)  # info outlives the checkout: never leave it behind
        for fn in hooks or ():  # reached only when the transaction committed
            fn()

    @contextmanager
    def session(self, write: bool = True) -> Iterator[Session]:
        """An ORM session in one transaction, committed on success."""
        with Session(self.writer if write else self.engine, expire_on_commit=False) as sess:
            with sess.begin():
                yield sess

    def dispose(self) -> None:
        self.engine.dispose()


def dialect_insert(conn: Connection, table):
    """An INSERT that can say ON CONFLICT (DO NOTHING / DO UPDATE) on either database."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
