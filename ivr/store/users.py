"""People who run the hotline: roles, passwords, API tokens and the PIN for the admin phone line."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import Connection, delete, or_, select, update
from werkzeug.security import generate_password_hash

from ivr.core.errors import Refused
from ivr.core.identity import caller_identity
from ivr.store.audit import audit, required_reason
from ivr.store.db import Database
from ivr.store.models import ApiToken, ConsoleSession, User, utcnow
from ivr.store.pins import hash_pin, pin_matches

ROLES = ("viewer", "agent", "ops", "admin")  # each can do what the ones before it can


class UserError(Refused):
    """A request about users that cannot be carried out; nothing was changed."""


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _valid_pin(pin: str) -> str:
    # Six digits at least: with the line's failure limits a 6-digit PIN holds for years, a 4-digit one for weeks.
    pin = (pin or "").strip()
    if not (pin.isdigit() and 6 <= len(pin) <= 12):
        raise UserError("an admin phone PIN is 6 to 12 digits")
    return pin


def add_user(db: Database, name: str, role: str, *, actor: str, password: str | None = None,
             phone_pin: str | None = None, reason: str = "") -> int:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise UserError("a user name is 1 to 120 characters")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < 10:
        raise UserError("a password is at least 10 characters")
    with db.write() as conn:
        if conn.execute(select(User.id).where(User.name == name)).first():
            raise UserError(f"there is already a user called {name!r}")
        user_id = conn.execute(User.__table__.insert().values(
            name=name, role=role, active=True, created_at=utcnow(),
            password_hash=generate_password_hash(password) if password else None,
            phone_pin_hash=hash_pin(_valid_pin(phone_pin)) if phone_pin else None,
        )).inserted_primary_key[0]
        audit(conn, actor=actor, action="user.add", subject=f"user {name}", to_value=f"role={role}", reason=reason)
    return user_id


def set_phone_pin(db: Database, name: str, pin: str, *, actor: str) -> None:
    with db.write() as conn:
        done = conn.execute(update(User).where(User.name == name).values(
            phone_pin_hash=hash_pin(_valid_pin(pin)))).rowcount
        if not done:
            raise UserError(f"there is no user called {name!r}")
        audit(conn, actor=actor, action="user.phone_pin", subject=f"user {name}", to_value="PIN changed")


def set_phone(db: Database, secret_key: str, name: str, phone: str, *, actor: str) -> None:
    """Record the caller ID an admin calls the admin line from (kept only hashed and masked)."""
    phone_hash, masked = caller_identity(secret_key, phone)
    if phone_hash is None:
        raise UserError(f"{phone!r} is not a phone number (use E.164, e.g. +12025550123)")
    with db.write() as conn:
        done = conn.execute(update(User).where(User.name == name).values(
            phone_hash=phone_hash, phone_masked=masked)).rowcount
        if not done:
            raise UserError(f"there is no user called {name!r}")
        audit(conn, actor=actor, action="user.phone", subject=f"user {name}", to_value=f"phone {masked}")


def phone_admin_for_pin(db: Database, pin: str, caller_hash: str | None = None,
                        own_numbers: bool = False) -> tuple[int, str] | None:
    """The active admin whose phone PIN this is, if any; with `own_numbers`, only one calling from her number."""
    if own_numbers and not caller_hash:
        return None
    query = select(User.id, User.name, User.phone_pin_hash).where(
        User.role == "admin", User.active.is_(True), User.phone_pin_hash.is_not(None))
    if own_numbers:
        query = query.where(User.phone_hash == caller_hash)
    with db.read() as conn:
        rows = conn.execute(query).all()
    for row in rows:
        if pin_matches(row.phone_pin_hash, pin):
            return row.id, row.name
    return None


def admin_phone(db: Database, caller_hash: str | None) -> bool:
    """Whether this caller ID is an active admin's registered phone (the admin line under attack still takes
    her PINs at the usual rate)."""
    if not caller_hash:
        return False
    with db.read() as conn:
        return conn.execute(select(User.id).where(User.phone_hash == caller_hash, User.role == "admin",
                                                  User.active.is_(True)).limit(1)).first() is not None


def _token_hash(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, and lets a request find its token by index.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, name: str, *, actor: str, expires: timedelta | None = None, label: str = "") -> str:
    """A new API token for a user, valid for `expires` (None: until revoked); only its hash is kept, so
    this is the one time it is shown."""
    if expires is not None and expires <= timedelta(0):
        raise UserError("a token's lifetime must be positive")
    token = "ivr_" + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + expires if expires is not None else None
    with db.write() as conn:
        user_id = conn.execute(select(User.id).where(User.name == name, User.active.is_(True))).scalar()
        if user_id is None:
            raise UserError(f"there is no active user called {name!r}")
        conn.execute(ApiToken.__table__.insert().values(user_id=user_id, token_hash=_token_hash(token),
                                                        label=label, created_at=now, expires_at=expires_at))
        until = f"expires {expires_at.isoformat(timespec='minutes')}" if expires_at else "no expiry"
        audit(conn, actor=actor, action="token.create", subject=f"user {name}",
              to_value=f"{label or 'API token'}; {until}")
    return token


def _usable_token(now):
    return (ApiToken.revoked_at.is_(None), or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))


def user_for_token(db: Database, token: str) -> tuple[str, str] | None:
    """(name, role) of the active user owning this API token, if it is neither revoked nor expired."""
    if not token:
        return None
    now = utcnow()
    with db.read() as conn:
        row = conn.execute(select(ApiToken.id, ApiToken.last_used_at, User.name, User.role)
                           .join(User, ApiToken.user_id == User.id)
                           .where(ApiToken.token_hash == _token_hash(token), User.active.is_(True),
                                  *_usable_token(now))).first()
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at < now - timedelta(minutes=1):
        with db.write() as conn:  # at most once a minute per token: a scripted client costs no write per call
            conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    return row.name, row.role


def list_tokens(db: Database, name: str | None = None) -> list[dict]:
    """Every API token (of one user, if named), newest first; never the token itself."""
    query = (select(ApiToken.id, User.name.label("user"), ApiToken.label, ApiToken.created_at,
                    ApiToken.last_used_at, ApiToken.expires_at, ApiToken.revoked_at)
             .join(User, ApiToken.user_id == User.id).order_by(ApiToken.id.desc()))
    if name is not None:
        query = query.where(User.name == name)
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [dict(r._mapping) for r in rows]


def _user_id(conn: Connection, name: str) -> int:
    user_id = conn.execute(select(User.id).where(User.name == name)).scalar()
    if user_id is None:
        raise UserError(f"there is no user called {name!r}")
    return user_id


def _revoke(conn: Connection, user_id: int) -> int:
    return conn.execute(update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow())).rowcount


def revoke_tokens(db: Database, name: str, *, actor: str, reason: str) -> int:
    """Revoke every live API token of a user at once; how many were revoked."""
    reason = required_reason(reason, UserError)
    with db.write() as conn:
        n = _revoke(conn, _user_id(conn, name))
        audit(conn, actor=actor, action="token.revoke", subject=f"user {name}", to_value=f"{n} token(s) revoked",
              reason=reason)
    return n


def deactivate_user(db: Database, name: str, *, actor: str, reason: str) -> None:
    """Lock a user out at once: console sessions ended, API tokens revoked, the phone PIN no longer accepted."""
    reason = required_reason(reason, UserError)
    with db.write() as conn:
        user_id = _user_id(conn, name)
        if not conn.execute(select(User.active).where(User.id == user_id)).scalar():
            raise UserError(f"{name!r} is already deactivated")
        conn.execute(update(User).where(User.id == user_id).values(active=False))
        sessions = conn.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id)).rowcount
        tokens = _revoke(conn, user_id)
        audit(conn, actor=actor, action="user.deactivate", subject=f"user {name}", from_value="active",
              to_value=f"inactive; {sessions} session(s) ended, {tokens} token(s) revoked", reason=reason)


def reactivate_user(db: Database, name: str, *, actor: str, reason: str) -> None:
    """Let a deactivated user back in; revoked tokens stay revoked (make a new one)."""
    reason = required_reason(reason, UserError)
    with db.write() as conn:
        user_id = _user_id(conn, name)
        if conn.execute(select(User.active).where(User.id == user_id)).scalar():
            raise UserError(f"{name!r} is already active")
        conn.execute(update(User).where(User.id == user_id).values(active=True))
        audit(conn, actor=actor, action="user.reactivate", subject=f"user {name}", from_value="inactive",
              to_value="active", reason=reason)


def is_active_admin(db: Database, name: str) -> bool:
    """Still an active admin: checked on every step of an admin line call, so deactivation ends it at once."""
    with db.read() as conn:
        return conn.execute(select(User.id).where(User.name == name, User.role == "admin",
                                                  User.active.is_(True))).first() is not None


def active_role(db: Database, name: str) -> str | None:
    """The role of an active user of that name (None: no such active user): what a CLI approval is checked by."""
    with db.read() as conn:
        return conn.execute(select(User.role).where(User.name == name, User.active.is_(True))).scalar()


# -- changes an admin makes in the console: each ends what the old role or secret allowed ------------------


def set_role(db: Database, name: str, role: str, *, actor: str, reason: str) -> None:
    """Give a user another role; their open console sessions end, so the new role holds from the next page."""
    reason = required_reason(reason, UserError)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    with db.write() as conn:
        user_id = _user_id(conn, name)
        before = conn.execute(select(User.role).where(User.id == user_id)).scalar()
        if before == role:
            raise UserError(f"{name!r} already has the {role} role")
        conn.execute(update(User).where(User.id == user_id).values(role=role))
        conn.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
        audit(conn, actor=actor, action="user.role", subject=f"user {name}", from_value=before, to_value=role,
              reason=reason)


def reset_password(db: Database, name: str, password: str, *, actor: str, reason: str) -> None:
    """A new console password; every session signed in with the old one ends."""
    reason = required_reason(reason, UserError)
    if not isinstance(password, str) or len(password) < 10:
        raise UserError("a password is at least 10 characters")
    with db.write() as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(password_hash=generate_password_hash(password)))
        sessions = conn.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id)).rowcount
        audit(conn, actor=actor, action="user.password", subject=f"user {name}",
              to_value=f"password reset; {sessions} session(s) ended", reason=reason)


def reset_phone_pin(db: Database, name: str, pin: str, *, actor: str, reason: str) -> None:
    """A new admin phone-line PIN, with the reason the audit log asks for."""
    reason = required_reason(reason, UserError)
    with db.write() as conn:
        user_id = _user_id(conn, name)
        conn.execute(update(User).where(User.id == user_id).values(
            phone_pin_hash=hash_pin(_valid_pin(pin))))
        audit(conn, actor=actor, action="user.phone_pin", subject=f"user {name}", to_value="PIN changed",
              reason=reason)


def revoke_token(db: Database, token_id: int, *, actor: str, reason: str) -> str:
    """Revoke one API token; returns its owner's name."""
    reason = required_reason(reason, UserError)
    with db.write() as conn:
        row = conn.execute(select(ApiToken.label, ApiToken.revoked_at, User.name)
                           .join(User, ApiToken.user_id == User.id)
                           .where(ApiToken.id == token_id)).first()
        if row is None or row.revoked_at is not None:
            raise UserError(f"there is no live token {token_id}")
        conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=utcnow()))
        audit(conn, actor=actor, action="token.revoke", subject=f"user {row.name}",
              to_value=f"token {token_id} ({row.label or 'API token'}) revoked", reason=reason)
    return row.name


def list_users(db: Database) -> list[dict]:
    with db.read() as conn:
        rows = conn.execute(select(User.id, User.name, User.role, User.active, User.created_at,
                                   User.password_hash.is_not(None).label("has_password"),
                                   User.phone_pin_hash.is_not(None).label("has_pin"))
                            .order_by(User.active.desc(), User.name)).all()
    return [dict(r._mapping) for r in rows]
