"""The affected-customer list: numbers kept only as keyed hashes, and its imports."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


class AffectedNumber(Base):
    """A phone number on the breach list, kept only as a keyed hash (HMAC-SHA256, first 16 bytes)."""

    __tablename__ = "affected_numbers"
    __table_args__ = {"sqlite_with_rowid": False}  # the hash is the whole row: no separate rowid b-tree
    number_hash: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)


class AffectedReference(Base):
    """A reference printed on the notice to someone on the list (key 8 proves it), kept only as a keyed hash."""

    __tablename__ = "affected_references"
    __table_args__ = {"sqlite_with_rowid": False}
    reference_hash: Mapped[bytes] = mapped_column(LargeBinary(16), primary_key=True)
    # What the company's list says was exposed for this person: one of the rules' verification.exposed codes,
    # whose prompt a verified caller hears. A category, never the data itself.
    exposed: Mapped[str | None] = mapped_column(String(40))


class VerificationAttempt(Base):
    """A reference keyed in on the phone, written by the spool writer; the limits count the wrong ones.

    (call_sid, step) is unique, so a replayed spool record counts once.
    """

    __tablename__ = "verification_attempts"
    __table_args__ = (UniqueConstraint("call_sid", "step", name="uq_verification_attempts_step"),
                      Index("ix_verification_attempts_caller", "caller_hash", "at"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    caller_hash: Mapped[str | None] = mapped_column(String(64))  # the keyed hash of calls.caller_hash
    ok: Mapped[bool] = mapped_column(Boolean)


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
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
