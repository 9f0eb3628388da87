"""The hotline's tables, as SQLAlchemy 2.0 typed models. Alembic migrations create them."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


MODES = ("message", "live")


class HotlineState(Base):
    """One row: the mode every worker reads on every call, and a version bumped on any content change."""

    __tablename__ = "hotline_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="message")
    content_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120), default="system")


class AuditEntry(Base):
    """Who changed what, when, from what, to what, and why."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(60), index=True)
    subject: Mapped[str] = mapped_column(String(200), default="")
    from_value: Mapped[str | None] = mapped_column(Text)
    to_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")


class Incident(Base):
    """A breach the hotline talks about; exactly one is active at a time."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20), default="high")
    exposed: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | closed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Media(Base):
    """Phone-ready audio, stored once per checksum; the database is the source of truth for the bytes."""

    __tablename__ = "media"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


TOPICS = ("main", "details", "advice")


class Announcement(Base):
    """One version of what callers hear on a topic (main, details, advice) in one language."""

    __tablename__ = "announcements"
    __table_args__ = (
        UniqueConstraint("incident_id", "language", "topic", "version", name="uq_announcements_version"),
        Index("ix_announcements_lookup", "incident_id", "language", "topic", "status"),
        # At most one published version per incident, language and topic: publishing can never leave two.
        Index("uq_announcements_one_published", "incident_id", "language", "topic", unique=True,
              sqlite_where=text("status = 'published'"), postgresql_where=text("status = 'published'")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    language: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(16), default="main")
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published | archived
    text: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16), default="text")  # text | tts | upload | phone
    engine: Mapped[str | None] = mapped_column(String(40))
    media_sha256: Mapped[str | None] = mapped_column(ForeignKey("media.sha256"))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Call(Base):
    """One phone call, keyed by Twilio's CallSid. The caller's number is kept only hashed and masked."""

    __tablename__ = "calls"
    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    caller_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    caller_masked: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    mode: Mapped[str | None] = mapped_column(String(16))
    incident_id: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(40))
    # The call step the outcome and language were recorded at: a late or replayed record never overwrites a newer one.
    outcome_step: Mapped[int] = mapped_column(Integer, default=-1, server_default=text("-1"))
    status: Mapped[str | None] = mapped_column(String(20))
    status_sequence: Mapped[int] = mapped_column(Integer, default=-1, server_default=text("-1"))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CallEvent(Base):
    """One step of a call (menu choice, timeout, invalid key, routing decision, status).

    (call_sid, step) is unique, so a request Twilio retries is recorded once.
    """

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_sid", "step", name="uq_call_events_step"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    digits: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)


class TTSCacheEntry(Base):
    """Synthesised speech by what was asked (text, language, voice): the same words are never synthesised twice."""

    __tablename__ = "tts_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of language, voice and text
    media_sha256: Mapped[str] = mapped_column(ForeignKey("media.sha256"))
    engine: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """Someone who runs the hotline: viewer, ops or admin."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | ops | admin
    password_hash: Mapped[str | None] = mapped_column(String(255))
    phone_pin_hash: Mapped[str | None] = mapped_column(String(255))  # for the admin phone line
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A bearer token for the JSON API, stored only as a hash."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """Work kept out of the webhooks' path (fetching a phone recording, sending an SMS), done by a worker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_ready", "status", "run_after"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- console --


class LoginFailure(Base):
    """One failed console login; counted per user name and address so throttling holds across workers."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_lookup", "user_name", "ip", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSession(Base):
    """A signed-in console session; the cookie carries only its random id, so logout and expiry are enforced here."""

    __tablename__ = "console_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the id in the cookie
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class BriefingVersion(Base):
    """One version of what agents are told about the active incident: facts, exposure, advice, approved answers."""

    __tablename__ = "briefing_versions"
    __table_args__ = (
        UniqueConstraint("incident_id", "version", name="uq_briefing_versions_version"),
        # At most one published briefing per incident, as for announcements.
        Index("uq_briefing_versions_one_published", "incident_id", unique=True,
              sqlite_where=text("status = 'published'"), postgresql_where=text("status = 'published'")),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | published | archived
    facts: Mapped[str] = mapped_column(Text, default="")
    exposed: Mapped[str] = mapped_column(Text, default="")
    caller_actions: Mapped[str] = mapped_column(Text, default="")
    answers: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
