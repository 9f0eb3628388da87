"""Limits on guessing PINs on the staff phone lines (admin and agent), kept in the database.

A limit carried in the call (the Gather URL) restarts with every call, and one kept per process restarts
with every worker: so each wrong PIN is a row here, counted in a sliding window per caller ID (its keyed
hash) and line-wide. Reaching a limit writes a lock: that caller ID, or the whole line, takes no PIN until
the lock ends, not even the right one. Callers hear the same words whichever limit locked them
(ivr/core/staff_call.py PIN_LOCKED). Each lock is audited, logged at error level and counted.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, or_, select

from ivr.ops.metrics import PIN_LOCKS
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import PinFailure, PinLock, utcnow

log = logging.getLogger(__name__)
WITHHELD = "withheld"  # callers without a usable caller ID share one allowance: hiding the number buys nothing


@dataclass(frozen=True)
class PinLimits:
    per_caller: int = 5  # wrong PINs from one caller ID within `window` lock that caller ID
    line_wide: int = 50  # wrong PINs from anyone within `window` lock the whole line
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)

    @classmethod
    def from_config(cls, cfg) -> "PinLimits":
        return cls(cfg.pin_caller_limit, cfg.pin_line_limit, timedelta(minutes=cfg.pin_window_minutes),
                   timedelta(minutes=cfg.pin_lock_minutes))


def _key(caller_hash: str | None) -> str:
    return caller_hash or WITHHELD


def locked(db: Database, line: str, caller_hash: str | None) -> bool:
    """Whether this line refuses PINs from this caller now (a lock on the caller ID, or on the line)."""
    with db.read() as conn:
        return conn.execute(select(PinLock.id).where(
            PinLock.line == line, PinLock.until > utcnow(),
            or_(PinLock.caller_hash.is_(None), PinLock.caller_hash == _key(caller_hash))).limit(1)).first() is not None


def failed(db: Database, line: str, caller_hash: str | None, masked: str | None, limits: PinLimits) -> bool:
    """Count one wrong PIN; lock the caller ID and/or the line when a limit is reached. True if now locked."""
    key, now = _key(caller_hash), utcnow()
    since = now - limits.window
    with db.write() as conn:
        conn.execute(delete(PinFailure).where(PinFailure.line == line, PinFailure.at <= since))
        conn.execute(insert(PinFailure).values(line=line, caller_hash=key, at=now))
        caller_n = conn.execute(select(func.count()).select_from(PinFailure).where(
            PinFailure.line == line, PinFailure.caller_hash == key, PinFailure.at > since)).scalar_one()
        line_n = conn.execute(select(func.count()).select_from(PinFailure).where(
            PinFailure.line == line, PinFailure.at > since)).scalar_one()
        locks = []
        if caller_n >= limits.per_caller:
            locks.append(("caller", key, f"caller ID {masked or WITHHELD}: {caller_n} wrong PINs"))
        if line_n >= limits.line_wide:
            locks.append(("line", None, f"the whole line: {line_n} wrong PINs from all callers"))
        for scope, lock_key, what in locks:
            held = conn.execute(select(PinLock.id).where(
                PinLock.line == line, PinLock.until > now,
                PinLock.caller_hash.is_(None) if lock_key is None else PinLock.caller_hash == lock_key)).first()
            if held:
                continue
            minutes = int(limits.lock.total_seconds() // 60)
            conn.execute(insert(PinLock).values(line=line, caller_hash=lock_key, until=now + limits.lock,
                                                created_at=now))
            detail = f"{what} in {int(limits.window.total_seconds() // 60)} min; PINs refused for {minutes} min"
            audit(conn, actor="pin guard", action=f"{line}_line.pin_lock", subject=f"{line} line",
                  to_value=detail, reason="too many wrong PINs")
            log.error("%s line locked (%s): %s", line, scope, detail)
            PIN_LOCKS.labels(line, scope).inc()
    return bool(locks)


def succeeded(db: Database, line: str, caller_hash: str | None) -> None:
    """The right PIN: this caller ID's count starts again (the line-wide count does not)."""
    with db.write() as conn:
        conn.execute(delete(PinFailure).where(PinFailure.line == line, PinFailure.caller_hash == _key(caller_hash)))
