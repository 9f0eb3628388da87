"""What callers hear and agents read: incidents, announcement versions and their audio, the briefing."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


class Incident(Base):
    """A breach the hotline talks about; exactly one is active at a time."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(20), default="high")
    exposed: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | active | closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Media(Base):
    """Phone-ready audio, stored once per checksum; the database is the source of truth for the bytes."""

    __tablename__ = "media"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    source: Mapped[str] = mapped_column(String(16), default="text")  # text | tts | upload | phone | carry-over | default
    engine: Mapped[str | None] = mapped_column(String(40))
    media_sha256: Mapped[str | None] = mapped_column(ForeignKey("media.sha256"))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-person publishing (ivr/store/approvals.py): a draft someone asked to publish awaits a second person.
    requested_by: Mapped[str | None] = mapped_column(String(120))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    override_reason: Mapped[str | None] = mapped_column(Text)  # an admin published it alone, and why


class TTSCacheEntry(Base):
    """Synthesised speech by what was asked (text, language, voice): the same words are never synthesised twice."""

    __tablename__ = "tts_cache"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of language, voice and text
    media_sha256: Mapped[str] = mapped_column(ForeignKey("media.sha256"))
    engine: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
