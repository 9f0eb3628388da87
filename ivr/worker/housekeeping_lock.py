"""Housekeeping on one server at a time: the callback retention and the queue reconciliation run in every
`ivr background`, but only the one holding a PostgreSQL advisory lock acts (the others check again each
round, and take over within a round when the holder's session ends: stopped, killed, or cut off).

A session-level lock, held on a connection of its own for as long as this server is the housekeeper, so
operators can see who it is (pg_locks, `locktype = 'advisory'`, objid = LOCK_KEY). On SQLite one server is
the only supported layout, so there is nothing to share. Why not procrastinate's periodic tasks, which also
run once across workers: the job queue stays a table (docs/architecture.md).
"""
from __future__ import annotations

import logging
import threading

from sqlalchemy import text

log = logging.getLogger("ivr.background")

LOCK_KEY = 0x1B0_7E1E  # "hotline": one number for the whole install, the same in every server


class HousekeepingLock:
    """Whether this process is the server that does the housekeeping now."""

    def __init__(self, db):
        self.db = db
        self._conn = None
        self._held = False
        self._guard = threading.Lock()  # the retention and reconciliation threads share the one session

    def mine(self) -> bool:
        """True while this process holds the lock (taking it if free); False if another server holds it
        or the database cannot be reached (then nobody acts until it is back: housekeeping can wait)."""
        if self.db.is_sqlite:
            return True
        with self._guard:
            try:
                if self._conn is None:
                    self._conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                if self._held:
                    self._conn.execute(text("SELECT 1"))  # the session, and so the lock, is still there
                    return True
                self._held = bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                                     {"key": LOCK_KEY}).scalar())
                if self._held:
                    log.info("housekeeping (retention, queue reconciliation) runs on this server now")
                return self._held
            except Exception as exc:
                log.warning("housekeeping lock: %s", exc)
                self._drop()
                return False

    def release(self) -> None:
        with self._guard:
            if self._held and self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                except Exception:
                    pass  # closing the session releases it anyway
            self._drop()

    def _drop(self) -> None:
        if self._held:
            log.warning("housekeeping lock released: another server may take over")
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
