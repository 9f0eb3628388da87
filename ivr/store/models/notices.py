"""Breach notices sent to the people on a list: campaigns, their recipients, and the numbers that opted out."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow

# planning: rows still being written (never sent); planned → sending ⇄ paused → finished, or cancelled.
CAMPAIGN_STATES = ("planning", "planned", "sending", "paused", "cancelled", "finished")
RECIPIENT_STATES = ("queued", "sending", "sent", "delivered", "failed", "opted_out", "skipped")


class NoticeCampaign(Base):
    """One notice sent to everyone on one list: what it says, by which channel, how fast, and when not."""

    __tablename__ = "notice_campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="planning")
    channels: Mapped[str] = mapped_column(String(40), default="sms")  # comma-separated: sms (voice later)
    rate_per_second: Mapped[float] = mapped_column(Float, default=1.0)  # per sender, never exceeded
    quiet_hours: Mapped[str | None] = mapped_column(String(16))  # "21:00-08:00", recipient's local time
    statements: Mapped[str] = mapped_column(Text)  # JSON {language: the published short statement}
    hotline_number: Mapped[str] = mapped_column(String(32), default="")  # what the text says to call
    notice_url: Mapped[str] = mapped_column(String(500), default="")
    sender: Mapped[str] = mapped_column(String(64), default="")  # Messaging Service SID or from-number
    source: Mapped[str] = mapped_column(String(400), default="")  # the list file's name
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # finished or cancelled
    # The sender process holding this campaign (one at a time, so a sender's rate holds across servers).
    sender_token: Mapped[str | None] = mapped_column(String(80))
    sender_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeRecipient(Base):
    """One person on a campaign's list. The number is kept sealed only while the campaign needs it; the
    reference printed on their notice only as a keyed hash (ivr/core/reference_codes.py)."""

    __tablename__ = "notice_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "number_hash", name="uq_notice_recipients_person"),
                      Index("ix_notice_recipients_due", "campaign_id", "state", "next_attempt_at"),
                      Index("ix_notice_recipients_sent", "campaign_id", "sent_at"))  # the rate, the chart
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("notice_campaigns.id"))
    number_sealed: Mapped[str | None] = mapped_column(String(255))  # ivr/store/sealed.py; None once ended
    number_hash: Mapped[bytes] = mapped_column(LargeBinary(16))  # as affected_numbers (ivr/store/affected.py)
    language: Mapped[str] = mapped_column(String(8))
    # The recipient's time zones from the number (phonenumbers), comma-separated: quiet hours apply in each.
    time_zones: Mapped[str] = mapped_column(String(120), default="")
    exposed: Mapped[str | None] = mapped_column(String(40))  # a verification.exposed code, never the data
    reference_hash: Mapped[str] = mapped_column(String(32), unique=True, index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    message_sid: Mapped[str | None] = mapped_column(String(64))  # reports find the recipient by id (?r=)
    error_code: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(String(80))  # the sender that recorded "sending"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NoticeOptOut(Base):
    """A number that replied STOP: no notice is sent to it, in any campaign, until it replies START."""

    __tablename__ = "notice_opt_outs"
    number_hash: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
