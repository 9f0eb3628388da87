"""Limits on guessing PINs on the staff phone lines (admin and agent), kept in the database.

A limit carried in the call (the Gather URL) restarts with every call, and one kept per process restarts
with every worker: so each wrong PIN is a row here, counted in a sliding window per caller ID (its keyed
hash) and line-wide. Too many from one caller ID lock that caller ID (not even the right PIN is checked).
Too many line-wide never shut the line: the line is "under attack" and slows down, each caller ID that is not
a staff member's registered phone getting one wrong PIN per window instead of `per_caller`; the real staff
member calling from her registered phone still gets in. `ivr pins unlock` lifts locks (audited). Callers hear
the same words whichever limit locked them (ivr/core/staff_call.py PIN_LOCKED). Locks and attacks are
audited, logged at error level and counted; an attack shows on the dashboard and /metrics while it lasts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, insert, select

from ivr.ops.metrics import ATTACKS_STARTED, PIN_LOCKS
from ivr.store.audit import audit, required_reason
from ivr.store.db import Database
from ivr.store.models import PinFailure, PinLock, utcnow

log = logging.getLogger(__name__)
WITHHELD = "withheld"  # callers without a usable caller ID share one allowance: hiding the number buys nothing


@dataclass(frozen=True)
class PinLimits:
    per_caller: int = 5  # wrong PINs from one caller ID within `window` lock that caller ID
    line_wide: int = 50  # wrong PINs from anyone within `window`: the line is under attack and slows down
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)

    @classmethod
    def from_config(cls, cfg) -> "PinLimits":
        return cls(cfg.pin_caller_limit, cfg.pin_line_limit, timedelta(minutes=cfg.pin_window_minutes),
                   timedelta(minutes=cfg.pin_lock_minutes))


def _key(caller_hash: str | None) -> str:
    return caller_hash or WITHHELD


def locked(db: Database, line: str, caller_hash: str | None) -> bool:
    """Whether this line refuses PINs from this caller ID now. Line-wide locks (before the slowdown) are
    ignored: a line is never shut for everyone."""
    with db.read() as conn:
        return conn.execute(select(PinLock.id).where(
            PinLock.line == line, PinLock.until > utcnow(), PinLock.caller_hash == _key(caller_hash))
            .limit(1)).first() is not None


def failed(db: Database, line: str, caller_hash: str | None, masked: str | None, limits: PinLimits,
           registered: bool = False) -> bool:
    """Count one wrong PIN; lock the caller ID when its limit is reached (while the line is under attack,
    one wrong PIN is the limit for a caller ID that is not `registered` to staff). True if now locked."""
    key, now = _key(caller_hash), utcnow()
    since = now - limits.window
    with db.write() as conn:
        conn.execute(delete(PinFailure).where(PinFailure.line == line, PinFailure.at <= since))
        conn.execute(insert(PinFailure).values(line=line, caller_hash=key, at=now))
        caller_n = conn.execute(select(func.count()).select_from(PinFailure).where(
            PinFailure.line == line, PinFailure.caller_hash == key, PinFailure.at > since)).scalar_one()
        line_n = conn.execute(select(func.count()).select_from(PinFailure).where(
            PinFailure.line == line, PinFailure.at > since)).scalar_one()
        attacked = line_n >= limits.line_wide
        window = int(limits.window.total_seconds() // 60)
        if line_n == limits.line_wide:  # the wrong PIN that started the attack: raise the alarm once
            detail = f"{line_n} wrong PINs from all callers in {window} min; unregistered caller IDs slowed"
            audit(conn, actor="pin guard", action=f"{line}_line.under_attack", subject=f"{line} line",
                  to_value=detail, reason="too many wrong PINs")
            log.error("%s line under attack: %s", line, detail)
            ATTACKS_STARTED.labels(f"{line} line").inc()
        if caller_n < (1 if attacked and not registered else limits.per_caller):
            return False
        held = conn.execute(select(PinLock.id).where(PinLock.line == line, PinLock.until > now,
                                                     PinLock.caller_hash == key)).first()
        if not held:
            minutes = int(limits.lock.total_seconds() // 60)
            conn.execute(insert(PinLock).values(line=line, caller_hash=key, until=now + limits.lock, created_at=now))
            detail = (f"caller ID {masked or WITHHELD}: {caller_n} wrong PIN{'s' if caller_n != 1 else ''} in "
                      f"{window} min{' (line under attack)' if attacked else ''}; PINs refused for {minutes} min")
            audit(conn, actor="pin guard", action=f"{line}_line.pin_lock", subject=f"{line} line",
                  to_value=detail, reason="too many wrong PINs")
            log.error("%s line locked (caller): %s", line, detail)
            PIN_LOCKS.labels(line, "caller").inc()
    return True


def lines_under_attack(db: Database, limits: PinLimits) -> list[str]:
    """The staff lines whose wrong PINs in the window reach the line-wide limit now."""
    with db.read() as conn:
        rows = conn.execute(select(PinFailure.line, func.count()).where(PinFailure.at > utcnow() - limits.window)
                            .group_by(PinFailure.line)).all()
    return sorted(line for line, n in rows if n >= limits.line_wide)


def unlock(db: Database, line: str, caller_hash: str | None, masked: str, *, actor: str, reason: str) -> int:
    """Lift the PIN locks of one caller ID (or, with caller_hash None, of every caller ID) on a line and forget
    their wrong PINs, so the line takes a PIN from them at once; how many locks were lifted. Audited."""
    reason = required_reason(reason)
    with db.write() as conn:
        mine = [] if caller_hash is None else [PinLock.caller_hash == caller_hash]
        n = conn.execute(delete(PinLock).where(PinLock.line == line, PinLock.until > utcnow(), *mine)).rowcount
        conn.execute(delete(PinFailure).where(
            PinFailure.line == line, *([] if caller_hash is None else [PinFailure.caller_hash == caller_hash])))
        audit(conn, actor=actor, action=f"{line}_line.pin_unlock", subject=f"{line} line",
              to_value=f"{n} lock(s) lifted for {masked}", reason=reason)
    log.warning("%s line: %d PIN lock(s) lifted for %s by %s", line, n, masked, actor)
    return n


def succeeded(db: Database, line: str, caller_hash: str | None) -> None:
    """The right PIN: this caller ID's count starts again (the line-wide count does not)."""
    with db.write() as conn:
        conn.execute(delete(PinFailure).where(PinFailure.line == line, PinFailure.caller_hash == _key(caller_hash)))
