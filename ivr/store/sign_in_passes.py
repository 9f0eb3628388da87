"""What lets a console user past the sign-in back-off, whatever strangers try: an address she signed in
from before, and a one-time unlock code from `ivr users unlock`. Only hashes are kept (sign_in_passes).

A stranger cannot aim the account-wide back-off at the real user: he cannot send from her address, and he
cannot use up her code (it is checked only with her password, and wrong guesses from elsewhere leave it be).
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, insert, select

from ivr.core.errors import Refused
from ivr.store.audit import audit, required_reason
from ivr.store.db import Database
from ivr.store.models import SignInPass, User, utcnow

ADDRESS_KEPT = timedelta(days=90)  # an address she signed in from is known this long after her last sign-in
CODE_LIFETIME = timedelta(minutes=30)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: read aloud or typed from a phone
CODE_GROUPS = 3  # 3 groups of 4: 60 bits, guessed only through the throttled sign-in form within 30 minutes


def account_key(name: str) -> str:
    """A name as the throttle counts it: sign-ins as "Ada" and "ada " are one account."""
    return (name or "").strip().lower()[:120]


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _code_hash(code: str) -> str:
    return _hash("code", "".join(c for c in code.upper() if c.isalnum()))


def known_address(db: Database, name: str, ip: str) -> bool:
    """Whether this account signed in from this address in the last ADDRESS_KEPT."""
    with db.read() as conn:
        return conn.execute(select(SignInPass.id).where(
            SignInPass.user_name == account_key(name), SignInPass.kind == "address",
            SignInPass.secret_hash == _hash("address", account_key(name), ip), SignInPass.expires_at > utcnow())
            .limit(1)).first() is not None


def remember_address(conn, name: str, ip: str) -> None:
    """After a successful sign-in (in its transaction): this address is hers for ADDRESS_KEPT from now."""
    now, key = utcnow(), account_key(name)
    secret = _hash("address", key, ip)
    conn.execute(delete(SignInPass).where(SignInPass.expires_at <= now))
    conn.execute(delete(SignInPass).where(SignInPass.user_name == key, SignInPass.secret_hash == secret))
    conn.execute(insert(SignInPass).values(user_name=key, kind="address", secret_hash=secret, created_at=now,
                                           expires_at=now + ADDRESS_KEPT))


def create_unlock_code(db: Database, name: str, *, actor: str, reason: str) -> str:
    """A one-time code that lets this user sign in past any back-off for CODE_LIFETIME (with her password).
    Shown once: only its hash is kept. An earlier unused code of hers stops working."""
    reason = required_reason(reason, Refused)
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(4 * CODE_GROUPS))
    code = "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))
    now, key = utcnow(), account_key(name)
    with db.write() as conn:
        user = conn.execute(select(User.name).where(User.name == name.strip(), User.active.is_(True))).scalar()
        if user is None:
            raise Refused(f"there is no active user called {name!r}")
        conn.execute(delete(SignInPass).where(SignInPass.user_name == key, SignInPass.kind == "code"))
        conn.execute(insert(SignInPass).values(user_name=key, kind="code", secret_hash=_code_hash(code),
                                               created_at=now, expires_at=now + CODE_LIFETIME))
        audit(conn, actor=actor, action="console.unlock_code", subject=f"user {user}",
              to_value=f"one-time sign-in code, valid {int(CODE_LIFETIME.total_seconds() // 60)} min", reason=reason)
    return code


def _code_row(name: str, code: str):
    return (SignInPass.user_name == account_key(name), SignInPass.kind == "code",
            SignInPass.secret_hash == _code_hash(code), SignInPass.expires_at > utcnow())


def unlock_code_valid(db: Database, name: str, code: str) -> bool:
    if not code or len(code) > 40:
        return False
    with db.read() as conn:
        return conn.execute(select(SignInPass.id).where(*_code_row(name, code))).first() is not None


def use_unlock_code(conn, name: str, code: str) -> bool:
    """Spend the code (in the sign-in's transaction); False if another request spent it first."""
    return conn.execute(delete(SignInPass).where(*_code_row(name, code))).rowcount == 1
