"""Changes planned ahead: a mode switch, a publish or an incident activation to carry out at a time."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


class ScheduledChange(Base):
    """One planned change and what became of it (ivr/store/scheduled.py; carried out by `ivr background`)."""

    __tablename__ = "scheduled_changes"
    __table_args__ = (Index("ix_scheduled_changes_due", "status", "run_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # mode | publish | activate
    target: Mapped[str] = mapped_column(String(40))  # the mode, the announcement's id, the incident's id
    what: Mapped[str] = mapped_column(String(300))  # the change in words, as it was when scheduled
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    override: Mapped[str | None] = mapped_column(Text)  # why to go ahead even if the go-live check then fails
    carry_over: Mapped[bool] = mapped_column(Boolean, default=False)  # an activation copies what callers hear
    # pending | carrying-out | done | refused (the go-live check) | failed (the change itself) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(80))  # host:pid:random of the server carrying it out
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)  # what happened, or why it was refused or cancelled
    cancelled_by: Mapped[str | None] = mapped_column(String(120))
