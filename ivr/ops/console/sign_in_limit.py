"""Sign-in attempts per client address, across every user name (flask-limiter), before any password is checked.

auth.throttled() slows guesses at one name; it cannot stop one address trying a new name each time, and each
try costs a password hash and a database write (measured: a flood of random names from one address took
/voice/incoming from ~15 ms to 2.3-6.4 s when callers and staff shared workers). Here an address gets
SIGN_IN_RATE failed tries, counted before the view runs; a successful sign-in is not counted.

The count must hold across every worker of both pools, so not in memory. With no service to rely on, it is
kept in a SQLite file in the instance folder (one per server: each server's own count, like nginx's
limit_req in front of it); IVR_RATE_LIMIT_STORAGE=redis://... shares it across servers. The hotline's
database is not used on purpose: a flood must not take locks that the call records' writer waits on.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits.storage import Storage

from ivr.ops.console.base import log

SIGN_IN_RATE = "10 per minute;50 per hour"  # failed tries per client address, all user names together
LIMITS_FILE = "sign_in_limits.sqlite"
SIGNED_IN = 303


class SQLiteFileStorage(Storage):
    """A `limits` storage in one SQLite file (fixed windows): `ivr+sqlite:///path/to/file`."""

    STORAGE_SCHEME = ["ivr+sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions, **options)
        self.path = uri.split("://", 1)[1]
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, "
                         "expires_at REAL NOT NULL)")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: sign-ins are rare, and no connection is shared across a fork or a thread.
        # Autocommit: each statement is its own transaction (the counter's upsert is one statement).
        conn = sqlite3.connect(self.path, timeout=2.0, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._connect() as conn:
            conn.execute("DELETE FROM counters WHERE expires_at <= ?", (now - 3600,))
            return conn.execute(
                "INSERT INTO counters (key, count, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET"
                " count = CASE WHEN expires_at <= ?4 THEN ?2 ELSE count + ?2 END,"
                " expires_at = CASE WHEN expires_at <= ?4 THEN ?3 ELSE expires_at END RETURNING count",
                (key, amount, now + expiry, now)).fetchone()[0]

    def get(self, key: str) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT count FROM counters WHERE key = ? AND expires_at > ?",
                               (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key: str) -> float:
        with self._connect() as conn:
            row = conn.execute("SELECT expires_at FROM counters WHERE key = ?", (key,)).fetchone()
        return row[0] if row else time.time()

    def check(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1")
            return True
        except sqlite3.Error:
            return False

    def reset(self) -> int:
        with self._connect() as conn:
            return conn.execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM counters WHERE key = ?", (key,))


def _unlock_code_given() -> bool:
    """A valid one-time code from `ivr users unlock` passes every sign-in throttle, this one too (a stranger
    sharing her address must not keep her out); a made-up code is counted like any try."""
    from ivr.store.sign_in_passes import unlock_code_valid

    code = request.form.get("unlock_code", "").strip()
    return bool(code) and unlock_code_valid(current_app.extensions["ivr"].db, request.form.get("name", ""), code)


def init_sign_in_limit(app: Flask) -> Limiter:
    """Limit POST /console/login per client address (remote_addr: the proxy's X-Forwarded-For entry when
    IVR_TRUSTED_PROXIES says so). A storage that fails lets sign-ins through: auth.throttled() still holds."""
    cfg = app.config["IVR"]
    cfg.instance_path.mkdir(parents=True, exist_ok=True)
    uri = cfg.rate_limit_storage or f"ivr+sqlite://{cfg.instance_path / LIMITS_FILE}"
    limiter = Limiter(get_remote_address, app=app, storage_uri=uri, strategy="fixed-window",
                      headers_enabled=True, swallow_errors=True)
    view = app.view_functions["console.login"]
    app.view_functions["console.login"] = limiter.limit(
        SIGN_IN_RATE, methods=["POST"], deduct_when=lambda response: response.status_code != SIGNED_IN,
        exempt_when=_unlock_code_given)(view)

    @app.errorhandler(RateLimitExceeded)
    def _too_many_from_here(exc: RateLimitExceeded):
        log.warning("console: sign-in refused from %s: more than %s failed tries from this address",
                           request.remote_addr, exc.limit.limit)
        message = "Too many failed sign-ins from your address. Wait a minute and try again."
        return render_template("console/login.html", next=request.values.get("next"), error=message), 429

    return limiter
