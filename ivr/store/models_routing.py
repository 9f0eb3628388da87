"""Tables for live agents and the affected-customer list: queues, callbacks, agents, affected numbers."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models import Base, utcnow


class AffectedNumber(Base):
    """A phone number on the breach list, kept only as a keyed hash (HMAC-SHA256, first 16 bytes)."""

    __tablename__ = "affected_numbers"
    __table_args__ = {"sqlite_with_rowid": False}  # the hash is the whole row: no separate rowid b-tree
    number_hash: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)


class AffectedImport(Base):
    """One import of a breach list: progress for resuming, counts for the report."""

    __tablename__ = "affected_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(400))
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done
    byte_offset: Mapped[int] = mapped_column(BigInteger, default=0)  # resume point: start of the next line
    line_no: Mapped[int] = mapped_column(Integer, default=0)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_added: Mapped[int] = mapped_column(Integer, default=0)
    bad_rows: Mapped[int] = mapped_column(Integer, default=0)
    actor: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QueueEntry(Base):
    """A caller waiting for (or served by) an agent: one row per call that was enqueued."""

    __tablename__ = "queue_entries"
    __table_args__ = (Index("ix_queue_entries_waiting", "status", "queue", "priority", "enqueued_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)  # higher is served first
    language: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(40), default="")  # the menu choice or rule that sent them
    severity: Mapped[str] = mapped_column(String(20), default="")
    affected: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | bridged | callback | left | hangup
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    wait_s: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(String(120))


class Callback(Base):
    """A caller who asked to be called back (or left a voicemail): agents' worklist, in priority order.

    This is the one place a full caller number is kept, because calling back needs it.
    """

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_worklist", "status", "priority", "requested_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    number: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(80), default="")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)  # their place in line
    voicemail_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting | done
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class Agent(Base):
    """Someone who takes calls on the agent line: known by caller ID (hashed) and a PIN (hashed)."""

    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    phone_hash: Mapped[str] = mapped_column(String(64), index=True)
    phone_masked: Mapped[str] = mapped_column(String(32))
    pin_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


