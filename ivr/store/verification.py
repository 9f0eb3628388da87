"""References on the company's notices (key 8), kept only as keyed hashes, and the wrong ones keyed in.

A reference is hashed like an affected number (HMAC-SHA256, first 16 bytes) under its own key derived from
IVR_SECRET_KEY, so a stolen table gives neither the references nor a way to test guesses offline. Attempts
are written by the spool writer (ivr/spool/batch.py), never in the caller's webhook; the webhook only reads
how many wrong ones there were (ivr/core/verification.py decides).
"""
from __future__ import annotations

import csv
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import bindparam, func, select

from ivr.core.verification import Failures, Verification
from ivr.store.affected import HASH_BYTES
from ivr.store.audit import audit
from ivr.store.db import Database, dialect_insert
from ivr.store.models import AffectedReference, VerificationAttempt, utcnow

REFERENCE_COLUMNS = ("reference", "notice_reference", "ref")
EXPOSED_COLUMNS = ("exposed", "data_exposed")
BATCH_ROWS = 10_000
MAX_BAD_ROWS_KEPT = 20


@lru_cache(maxsize=8)
def reference_key(secret_key: str) -> bytes:
    """The HMAC key for references: imported ones and the codes on notices (ivr/core/reference_codes.py)."""
    return hmac.new(secret_key.encode(), b"affected-reference", hashlib.sha256).digest()


def reference_hash(secret_key: str, digits: str) -> bytes:
    """The stored form of a reference: its digits only (as keyed in on a phone), keyed-hashed."""
    return hmac.digest(reference_key(secret_key), digits.encode(), "sha256")[:HASH_BYTES]


def digits_of(text: str) -> str:
    """A reference as printed ("4821-0093-77") to what a caller keys in ("4821009377")."""
    return "".join(ch for ch in text if ch.isdigit())


def on_list(db: Database, secret_key: str, digits: str) -> str | None:
    """None if the reference is on no notice, else what the list says was exposed for them ("": nothing)."""
    with db.read() as conn:
        row = conn.execute(_LOOKUP, {"h": reference_hash(secret_key, digits)}).first()
    return None if row is None else row.exposed or ""


def recent_failures(db: Database, caller_hash: str | None, limits: Verification) -> Failures:
    """Wrong references in the window, from this caller ID (withheld numbers count as one) and on the
    whole line; each count stops at its limit, so a flood costs no more to count than the limit."""
    since = utcnow() - timedelta(minutes=limits.window_minutes)
    t = VerificationAttempt.__table__
    wrong = (t.c.at >= since) & (t.c.ok.is_(False))
    mine = t.c.caller_hash == caller_hash if caller_hash else t.c.caller_hash.is_(None)
    with db.read() as conn:
        caller = conn.execute(_bounded(t, wrong & mine, limits.attempts_per_caller)).scalar_one()
        line = conn.execute(_bounded(t, wrong, limits.attempts_per_line)).scalar_one()
    return Failures(caller, line)


def forget_old_attempts(db: Database, limits: Verification) -> int:
    """Attempts older than the window count for nothing: delete them (housekeeping, ivr/worker/retention.py)."""
    t = VerificationAttempt.__table__
    with db.write() as conn:
        return conn.execute(t.delete().where(t.c.at < utcnow() - timedelta(minutes=limits.window_minutes))).rowcount


def _bounded(t, where, limit: int):
    return select(func.count()).select_from(select(t.c.id).where(where).limit(limit).subquery())


# -- import ------------------------------------------------------------------------------------------------
@dataclass
class ReferenceImport:
    rows_read: int = 0
    added: int = 0
    bad_rows: int = 0
    bad_samples: list[str] = field(default_factory=list)
    column: str = ""


def import_references(db: Database, path: str | Path, *, secret_key: str, actor: str,
                      limits: Verification) -> ReferenceImport:
    """Add the references of a CSV file (a column named reference, else the only column), with what was
    exposed for each if it has an `exposed` column; run again, it adds nothing twice. A reference is kept as
    its digits; one with too few or too many digits, or an exposed code the rules do not know, is a bad row."""
    report = ReferenceImport()
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = csv.reader(fh)
        first = next(rows, None)
        names = [n.strip().lower() for n in first or []]
        column = next((names.index(c) for c in REFERENCE_COLUMNS if c in names), None)
        exposed_column = next((names.index(c) for c in EXPOSED_COLUMNS if c in names), None)
        if column is None and first and len(first) == 1 and digits_of(first[0]) == first[0].strip():
            column, pending = 0, [first]  # no header: one column of references
        elif column is None:
            raise ValueError(f"{path.name}: no column named {', '.join(REFERENCE_COLUMNS)}")
        else:
            pending = []
        report.column = f"column {column + 1}" + ("" if exposed_column is None else
                                                  f", exposed from column {exposed_column + 1}")
        batch: list[dict] = []
        for line_no, row in enumerate(_chain(pending, rows), start=1 if pending else 2):
            report.rows_read += 1
            digits = digits_of(row[column]) if column < len(row) else ""
            exposed = (row[exposed_column].strip().lower() if exposed_column is not None
                       and exposed_column < len(row) else "")
            problem = _problem(digits, exposed, limits)
            if problem:
                report.bad_rows += 1
                if len(report.bad_samples) < MAX_BAD_ROWS_KEPT:
                    report.bad_samples.append(f"line {line_no}: {problem}")
                continue
            batch.append({"reference_hash": reference_hash(secret_key, digits), "exposed": exposed or None})
            if len(batch) >= BATCH_ROWS:
                report.added += _add(db, batch)
                batch = []
        report.added += _add(db, batch)
    with db.write() as conn:
        audit(conn, actor=actor, action="affected.references", subject=path.name[:200],
              to_value=f"rows {report.rows_read}, added {report.added}, bad {report.bad_rows}")
    return report


def _problem(digits: str, exposed: str, limits: Verification) -> str | None:
    if not limits.min_digits <= len(digits) <= limits.max_digits:
        return f"{len(digits)} digits (references have {limits.min_digits}-{limits.max_digits})"
    if exposed and exposed not in limits.exposed:
        return (f"exposed {exposed[:40]!r} is not one of the rules' verification.exposed "
                f"({', '.join(limits.exposed) or 'none'})")
    return None


def _chain(first: list, rest):
    yield from first
    yield from rest


def _add(db: Database, rows: list[dict]) -> int:
    """Add references; one already there keeps what it had (a later file does not rewrite an earlier one)."""
    if not rows:
        return 0
    unique = list({row["reference_hash"]: row for row in rows}.values())
    with db.write() as conn:
        stmt = dialect_insert(conn, AffectedReference.__table__).on_conflict_do_nothing(
            index_elements=["reference_hash"])
        stmt = stmt.returning(AffectedReference.reference_hash)  # the rows added (rowcount is not reliable here)
        return len(conn.execute(stmt, unique).all())


_LOOKUP = select(AffectedReference.exposed).where(AffectedReference.reference_hash == bindparam("h"))
