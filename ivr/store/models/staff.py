"""The people who run the hotline: users, their API tokens and console sessions, agents; PIN guessing limits."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


class User(Base):
    """Someone who runs the hotline: viewer, ops or admin."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | ops | admin
    password_hash: Mapped[str | None] = mapped_column(String(255))
    phone_pin_hash: Mapped[str | None] = mapped_column(String(255))  # for the admin phone line
    # The admin's own caller ID (keyed hash, as for callers): the admin line can be limited to these.
    phone_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the JSON API, stored only as a hash."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: until revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LoginFailure(Base):
    """One failed console login; counted per user name and address so throttling holds across workers."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_lookup", "user_name", "ip", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInPass(Base):
    """What lets a console user past the sign-in back-off: an address she signed in from before (kind
    "address"), or a one-time unlock code from `ivr users unlock` (kind "code"). Only hashes are kept."""

    __tablename__ = "sign_in_passes"
    __table_args__ = (Index("ix_sign_in_passes_lookup", "user_name", "kind", "secret_hash"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(120))  # as the throttle keys it: stripped, lower case
    kind: Mapped[str] = mapped_column(String(16))  # address | code
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the name and address, or of the code
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A signed-in console session; the cookie carries only its random id, so logout and expiry are enforced here."""

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the id in the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Agent(Base):
    """Someone who takes calls on the agent line: known by caller ID (hashed) and a PIN (hashed)."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str] = mapped_column(String(32))
    pin_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    phone: Mapped[str | None] = mapped_column(String(255))  # sealed; "call now" rings it; None once deactivated
    user_name: Mapped[str | None] = mapped_column(String(120))  # their console login, for the agent desk
    queues: Mapped[str] = mapped_column(String(400), default="")  # the queues they serve, comma-separated; "": all
    # available | on_call | wrap_up (the call is over, no wrap-up recorded yet) | break | signed_out
    status: Mapped[str] = mapped_column(String(16), default="signed_out")
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    call_sid: Mapped[str | None] = mapped_column(String(64))  # the caller they are (or were last) with
    # Their own call to the agent line while it is up: set at sign-in, cleared when its final status comes.
    line_call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    callback_id: Mapped[int | None] = mapped_column(Integer)  # set when that call is a callback


class PinFailure(Base):
    """One wrong PIN on a staff phone line, per caller ID (hashed), so limits hold across calls and workers."""

    __tablename__ = "pin_failures"
    __table_args__ = (Index("ix_pin_failures_lookup", "line", "caller_hash", "at"),
                      Index("ix_pin_failures_line", "line", "at"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    line: Mapped[str] = mapped_column(String(16))  # admin | agent
    caller_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PinLock(Base):
    """A staff line refusing PINs until `until`: from one caller ID, or (caller_hash NULL) from everyone."""

    __tablename__ = "pin_locks"
    __table_args__ = (Index("ix_pin_locks_lookup", "line", "until"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[str] = mapped_column(String(16))
    caller_hash: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
