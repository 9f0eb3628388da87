"""Calls and their steps, as the spool writer records them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


class Call(Base):
    """One phone call, keyed by Twilio's CallSid. The caller's number is kept only hashed and masked."""

    __tablename__ = "calls"
    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # Not indexed: nothing looks calls up by caller, and each call written paid for a random-key index
    # (migration 0018).
    caller_hash: Mapped[str | None] = mapped_column(String(64))
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
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallEvent(Base):
    """One step of a call (menu choice, timeout, invalid key, routing decision, status).

    (call_sid, step) is unique, so a request Twilio retries is recorded once.
    """

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_sid", "step", name="uq_call_events_step"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    digits: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
