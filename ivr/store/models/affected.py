"""The affected-customer list: numbers kept only as keyed hashes, and its imports."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ivr.store.models.base import Base, UTCDateTime, utcnow


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
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
