"""Callers waiting for a person, the callbacks owed to them, and what agents recorded of each call."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow

REASON_CHARS = 200  # a routing rule's name in full: the agent hears it as the reason for the call


class QueueEntry(Base):
    """A caller waiting for (or served by) an agent: one row per call that was enqueued."""

    __tablename__ = "queue_entries"
    __table_args__ = (Index("ix_queue_entries_waiting", "status", "queue", "priority", "enqueued_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)  # higher is served first
    language: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(REASON_CHARS), default="")  # the routing rule that sent them
    severity: Mapped[str] = mapped_column(String(20), default="")
    affected: Mapped[bool] = mapped_column(Boolean, default=False)  # on the breach list, by caller ID or reference
    # Proved it with the reference on their notice; affected without it is a caller ID only, which anyone can
    # fake: the agent is told not to confirm it (ivr/core/agent_line.py whisper).
    verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # waiting | connecting (an agent's <Dial><Queue> is on its way) | bridged (Twilio connected them) |
    # callback | left | hangup; ended (the call ended, the queue never said how) | expired (still "waiting" long past the queue's max wait: closed by the reconciler)
    status: Mapped[str] = mapped_column(String(20), default="waiting")
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_s: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str | None] = mapped_column(String(120))


class Callback(Base):
    """A caller who asked to be called back (or left a voicemail), owed until an agent reaches them.

    This is the one place a full caller number is kept, because calling back needs it: sealed under the data
    key (ivr/store/sealed.py), and deleted when the callback is closed (done, unreachable or expired).
    """

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_worklist", "status", "priority", "requested_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    number: Mapped[str | None] = mapped_column(String(255))  # sealed (ivr/store/sealed.py); None once closed
    number_masked: Mapped[str] = mapped_column(String(32), default="")
    # The caller's keyed hash (ivr/core/identity.py): what finds a number's callback, since tokens never repeat.
    number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(80), default="")
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # their place in line
    voicemail_url: Mapped[str | None] = mapped_column(Text)
    # waiting | offered (to claimed_by) | calling (claimed_by is dialling) | done | unreachable | expired
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # dials that reached nobody
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # not offered before this
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class WrapUp(Base):
    """What an agent recorded at the end of a call: one of the rules' wrap-up codes and a note."""

    __tablename__ = "wrap_ups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)  # the caller's call (a callback's original)
    callback_id: Mapped[int | None] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(40), index=True)
    note: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(String(64), default="")
    language: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
