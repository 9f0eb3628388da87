"""People who run the hotline: roles, passwords, API tokens and the PIN for the admin phone line."""
from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from ivr.core.errors import Refused
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.pins import hash_pin, pin_matches
from ivr.store.models import ApiToken, User, utcnow

ROLES = ("viewer", "ops", "admin")


class UserError(Refused):
    """A request about users that cannot be carried out; nothing was changed."""


def role_at_least(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _valid_pin(pin: str) -> str:
    pin = (pin or "").strip()
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise UserError("a phone PIN is 4 to 12 digits")
    return pin


def add_user(db: Database, name: str, role: str, *, actor: str, password: str | None = None,
             phone_pin: str | None = None) -> int:
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
        audit(conn, actor=actor, action="user.add", subject=f"user {name}", to_value=f"role={role}")
    return user_id


def set_phone_pin(db: Database, name: str, pin: str, *, actor: str) -> None:
    with db.write() as conn:
        done = conn.execute(update(User).where(User.name == name).values(
            phone_pin_hash=hash_pin(_valid_pin(pin)))).rowcount
        if not done:
            raise UserError(f"there is no user called {name!r}")
        audit(conn, actor=actor, action="user.phone_pin", subject=f"user {name}", to_value="PIN changed")


def phone_admin_for_pin(db: Database, pin: str) -> tuple[int, str] | None:
    """The active admin whose phone PIN this is, if any."""
    with db.read() as conn:
        rows = conn.execute(select(User.id, User.name, User.phone_pin_hash).where(
            User.role == "admin", User.active.is_(True), User.phone_pin_hash.is_not(None))).all()
    for row in rows:
        if pin_matches(row.phone_pin_hash, pin):
            return row.id, row.name
    return None


def _token_hash(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough, and lets a request find its token by index.
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, name: str, *, actor: str, label: str = "") -> str:
    """A new API token for a user; only its hash is kept, so this is the one time it is shown."""
    token = "ivr_" + secrets.token_urlsafe(32)
    with db.write() as conn:
        user_id = conn.execute(select(User.id).where(User.name == name, User.active.is_(True))).scalar()
        if user_id is None:
            raise UserError(f"there is no active user called {name!r}")
        conn.execute(ApiToken.__table__.insert().values(user_id=user_id, token_hash=_token_hash(token),
                                                        label=label, created_at=utcnow()))
        audit(conn, actor=actor, action="token.create", subject=f"user {name}", to_value=label or "API token")
    return token


def user_for_token(db: Database, token: str) -> tuple[str, str] | None:
    """(name, role) of the active user owning this API token."""
    if not token:
        return None
    with db.read() as conn:
        row = conn.execute(select(User.name, User.role).join(ApiToken, ApiToken.user_id == User.id)
                           .where(ApiToken.token_hash == _token_hash(token), User.active.is_(True))).first()
    return (row.name, row.role) if row else None
