"""The affected-customer list ("was my data in the breach?"): numbers kept only as keyed hashes, imported from CSV.

A number is normalised to E.164, hashed with HMAC-SHA256 under a key derived from IVR_SECRET_KEY, and the first
16 bytes are the primary key of `affected_numbers`: a lookup is one primary-key probe whatever the list's size.
Imports stream the file from a byte offset and commit their progress with each batch, so they resume.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata
from sqlalchemy import Connection, insert, select, update

from ivr.audit import audit
from ivr.db import Database
from ivr.models import utcnow
from ivr.models_routing import AffectedImport, AffectedNumber

HASH_BYTES = 16
PHONE_COLUMNS = ("phone", "number", "phone_number", "msisdn")
MAX_BAD_ROWS_KEPT = 100
# Rows per committed batch. SQLite rewrites every b-tree page a transaction touches, and random keys touch
# nearly all of them, so fewer, larger batches write far less (measured at 10M rows: 100k-row batches took
# about twice as long as 500k). PostgreSQL logs row by row and does not care much.
BATCH_SQLITE = 500_000
BATCH_POSTGRESQL = 200_000
SQLITE_IMPORT_CACHE_KIB = 32 * 1024  # page cache of the import connection only (the default is 2 MiB)


class InvalidNumber(ValueError):
    """A string that is not a valid phone number; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- hashing -----------------------------------------------------------------------------------------------
def hash_key(secret_key: str) -> bytes:
    """The HMAC key for affected numbers, derived from the hotline's secret (as hotline.caller_identity does)."""
    return hmac.new(secret_key.encode(), b"affected-number", hashlib.sha256).digest()


def number_hash(secret_key: str, e164: str) -> bytes:
    """The stored form of an E.164 number: HMAC-SHA256 over its digits (no '+'), first 16 bytes."""
    return hmac.digest(hash_key(secret_key), e164.lstrip("+").encode(), "sha256")[:HASH_BYTES]


class NumberHasher:
    """`number_hash` for one secret, about 3x faster: HMAC's inner and outer states are computed once."""

    def __init__(self, secret_key: str):
        key = hash_key(secret_key).ljust(64, b"\0")  # 32 bytes, under SHA-256's 64-byte block: used as is
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, e164: str) -> bytes:
        inner = self._inner.copy()
        inner.update(e164.lstrip("+").encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:HASH_BYTES]


@lru_cache(maxsize=8)
def _hasher(secret_key: str) -> NumberHasher:
    return NumberHasher(secret_key)


# -- normalising -------------------------------------------------------------------------------------------
_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_ERRORS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
}
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
               "fixed_line", "mobile")


def normalize(raw: str, default_region: str = "US") -> str:
    """A phone number in any usual format as E.164 ('+12125550123'); raises InvalidNumber with the reason."""
    return _normalizer(default_region.upper())(raw)


@lru_cache(maxsize=16)
def _normalizer(default_region: str) -> "Normalizer":
    return Normalizer(default_region)


class Normalizer:
    """`normalize` for one default region, with a fast path that gives phonenumbers' own answers.

    phonenumbers takes 60-80 µs to parse and validate a number: 10 minutes for 10 million. Plain '+E.164'
    and plain national digits (separators allowed) take a fast path (about 3 µs) that applies phonenumbers'
    own validity patterns, precompiled; it is used only where phonenumbers' parsing could not have read the
    digits differently (no national prefix, international prefix, country code or leading zero at the
    start), and only to accept: anything it would reject goes through phonenumbers in full. Tests check the
    two agree on random numbers across all country codes.
    """

    def __init__(self, default_region: str):
        metadata = PhoneMetadata.metadata_for_region(default_region)
        if metadata is None:
            raise ValueError(f"unknown region {default_region!r} (use a two-letter code such as US or GB)")
        self.region = default_region
        self._cc = metadata.country_code
        self._cc_str = str(metadata.country_code)
        self._idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
        self._national_prefix = _compiled(metadata.national_prefix_for_parsing)

    def __call__(self, raw: str) -> str:
        e164 = self._fast(raw)
        return e164 if e164 is not None else self._slow(raw)

    def _fast(self, raw: str) -> str | None:
        s = raw.replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace(".", "")
        if not s.isascii():
            return None
        if s[:1] == "+":
            digits = s[1:]
            if not digits.isdigit():
                return None
            for n in (1, 2, 3):
                country = _country(digits[:n])
                if country is not None:
                    return "+" + digits if country.accepts(digits[n:]) else None
            return None
        if not s.isdigit() or s[0] == "0" or s.startswith(self._cc_str):
            return None
        if self._idd is not None and self._idd.match(s):
            return None
        if self._national_prefix is not None and self._national_prefix.match(s):
            return None
        country = _country(self._cc_str)
        return "+" + self._cc_str + s if country is not None and country.valid(s) else None

    def _slow(self, raw: str) -> str:
        """phonenumbers in full; an extension ("x 12") is dropped: callers ring from the number itself."""
        if not raw or not raw.strip():
            raise InvalidNumber("empty")
        try:
            number = phonenumbers.parse(raw, self.region)
        except NumberParseException as exc:
            raise InvalidNumber(_PARSE_ERRORS.get(exc.error_type, "not a phone number")) from None
        if not phonenumbers.is_valid_number(number):
            why = phonenumbers.is_possible_number_with_reason(number)
            region = phonenumbers.region_code_for_country_code(number.country_code)
            raise InvalidNumber(f"{_LENGTH_ERRORS.get(why, 'not a valid number')} for {region} "
                                f"(+{number.country_code})")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _compiled(pattern: str | None):
    return re.compile(pattern) if pattern else None


_COUNTRIES: dict[str, "_CountryPatterns | None"] = {}


def _country(digits: str) -> "_CountryPatterns | None":
    """The patterns of the country calling code written `digits` ('1', '44'), None for no (usable) code."""
    try:
        return _COUNTRIES[digits]
    except KeyError:
        pass
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits)) if digits[:1] not in ("", "0") else None
    if not regions or phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in regions:
        country = None  # unknown, or a non-geographic code (+800, +882...): phonenumbers decides
    else:
        country = _CountryPatterns(int(digits), regions)
    _COUNTRIES[digits] = country
    return country


class _CountryPatterns:
    """phonenumbers.is_valid_number for one country code, with each region's type patterns precompiled."""

    def __init__(self, country_code: int, regions: tuple[str, ...]):
        main = PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_country_code(country_code))
        self.national_prefix = _compiled(main.national_prefix_for_parsing)
        self.regions = []
        for code in regions:
            md = PhoneMetadata.metadata_for_region(code)
            if md is not None:
                leading = re.compile(md.leading_digits) if md.leading_digits else None
                self.regions.append((leading, _RegionPatterns(md)))

    def valid(self, nsn: str) -> bool:
        """Mirrors region_code_for_number + is_valid_number_for_region."""
        if len(self.regions) == 1:
            return self.regions[0][1].valid(nsn)
        for leading, patterns in self.regions:
            if leading is not None:
                if leading.match(nsn):
                    return patterns.valid(nsn)
            elif patterns.valid(nsn):
                return True
        return False

    def accepts(self, nsn: str) -> bool:
        """Valid, and read by phonenumbers as these very digits (no national prefix it would strip)."""
        if self.national_prefix is not None and self.national_prefix.match(nsn):
            return False
        return self.valid(nsn)


class _RegionPatterns:
    """phonenumbers' _number_type_helper(...) != UNKNOWN, as one regex per number length."""

    def __init__(self, md):
        general = md.general_desc
        self.general = _compiled(general.national_number_pattern) if general is not None else None
        self.general_lengths = set(general.possible_length) if general is not None else set()
        self.by_length: dict[int, re.Pattern | None] = {}
        self._descs = [getattr(md, name) for name in _TYPE_DESCS]

    def _union(self, length: int):
        parts = [d.national_number_pattern for d in self._descs
                 if d is not None and d.national_number_pattern
                 and (not d.possible_length or length in d.possible_length)]
        return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def valid(self, nsn: str) -> bool:
        if self.general is None:
            return False
        length = len(nsn)
        if self.general_lengths and length not in self.general_lengths:
            return False
        if not self.general.fullmatch(nsn):
            return False
        try:
            union = self.by_length[length]
        except KeyError:
            union = self.by_length[length] = self._union(length)
        return union is not None and union.fullmatch(nsn) is not None


# -- lookup ------------------------------------------------------------------------------------------------
def is_affected(db: Database, secret_key: str, number: str, default_region: str = "US") -> bool:
    """Is this number on the list? One primary-key lookup; an invalid number is not on it."""
    try:
        e164 = normalize(number, default_region)
    except InvalidNumber:
        return False
    key = _hasher(secret_key)(e164)
    with db.read() as conn:
        return conn.execute(select(AffectedNumber.number_hash).where(AffectedNumber.number_hash == key)
                            ).first() is not None


# -- import ------------------------------------------------------------------------------------------------
MAX_LINE_BYTES = 4096  # longer lines are bad rows, skipped in pieces: memory stays constant whatever the file
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY: signature, flags, no header extension
_PGCOPY_ROW = b"\x00\x01" + HASH_BYTES.to_bytes(4, "big")  # one field of 16 bytes
_PGCOPY_TRAILER = b"\xff\xff"


@dataclass(frozen=True)
class BadRow:
    line_no: int
    reason: str


@dataclass(frozen=True)
class ImportProgress:
    """What an import has done so far (including earlier, interrupted runs of the same file)."""

    rows_done: int
    rows_added: int
    bad_rows: int
    rows_committed: int  # rows whose batch is committed: what a rerun would not read again
    bytes_done: int
    total_bytes: int
    elapsed_s: float
    rate: float  # rows/s in this run
    eta_s: float | None  # from bytes still to read at this run's byte rate


@dataclass
class ImportReport:
    import_id: int
    filename: str
    file_sha256: str
    column: str  # how the number column was found, e.g. "header 'phone' (column 2)" or "first column"
    rows_read: int = 0
    rows_added: int = 0
    bad_rows: int = 0
    bad_samples: list[BadRow] = field(default_factory=list)  # the first MAX_BAD_ROWS_KEPT of this run
    resumed_from_line: int = 0  # 0: a fresh import
    elapsed_s: float = 0.0
    max_batch_s: float = 0.0  # the longest write transaction (SQLite: how long writers were kept waiting)

    @property
    def already_present(self) -> int:
        """Valid rows that added nothing: on the list already, or repeated in the file."""
        return self.rows_read - self.bad_rows - self.rows_added


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    column: int
    header: bool
    description: str


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, streamed (about 1 s per GB here): identifies an import to resume."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def import_file(db: Database, path: str | Path, *, secret_key: str, actor: str, default_region: str = "US",
                batch_size: int | None = None, progress: Callable[[ImportProgress], None] | None = None,
                progress_interval: float = 1.0) -> ImportReport:
    """Add a CSV file's phone numbers to the list; resume where an interrupted import of this file stopped.

    Each batch and the import's progress are committed together, so an import stopped at any point (Ctrl-C,
    kill, a crash) goes on from its last committed batch when run again; rows are added idempotently, so
    importing a file again adds nothing. OSError if the file cannot be read; ValueError for an unknown region.
    """
    path = Path(path)
    normalizer = Normalizer(default_region.upper())
    total_bytes = path.stat().st_size
    if not db.is_sqlite and total_bytes >= 2**31:
        raise ValueError("files of 2 GiB or more cannot be resumed: affected_imports.byte_offset is a 32-bit "
                         "integer on PostgreSQL (split the file)")
    sha = file_sha256(path)
    batch_size = batch_size or (BATCH_SQLITE if db.is_sqlite else BATCH_POSTGRESQL)
    with open(path, "rb") as fh, db.writer.connect() as conn:
        layout = _layout(fh.readline(MAX_LINE_BYTES))
        job = _claim(conn, sha, path.name, actor)
        report = ImportReport(import_id=job.id, filename=path.name, file_sha256=sha, column=layout.description,
                              rows_read=job.rows_read, rows_added=job.rows_added, bad_rows=job.bad_rows,
                              resumed_from_line=job.line_no)
        offset, line_no = job.byte_offset, job.line_no
        if offset == 0 and layout.header:
            fh.seek(0)
            offset = len(fh.readline(MAX_LINE_BYTES))
            line_no = 1
        fh.seek(offset)
        writer = _SQLiteBatches(conn) if db.is_sqlite else _PostgresBatches(conn)
        started = time.monotonic()
        start_offset, last_report = offset, started
        hasher = _hasher(secret_key)
        rows_committed = base_rows = report.rows_read
        try:
            eof = False
            while not eof:
                batch: list[bytes] = []
                n = 0
                while n < batch_size:
                    line = fh.readline(MAX_LINE_BYTES)
                    if not line:
                        eof = True
                        break
                    offset += len(line)
                    line_no += 1
                    n += 1
                    if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                        while line and not line.endswith(b"\n"):  # skip the rest of an over-long line
                            line = fh.readline(MAX_LINE_BYTES)
                            offset += len(line)
                        _bad(report, line_no, f"line longer than {MAX_LINE_BYTES} bytes")
                        continue
                    try:
                        e164 = normalizer(_field(line, layout))
                    except InvalidNumber as exc:
                        _bad(report, line_no, exc.reason)
                        continue
                    batch.append(hasher(e164))
                    if progress is not None and not n & 0xFFF and time.monotonic() - last_report >= progress_interval:
                        last_report = time.monotonic()
                        progress(_progress(report, n, rows_committed, offset, total_bytes, start_offset, started,
                                           base_rows))
                report.rows_read += n
                t0 = time.monotonic()
                with conn.begin():
                    report.rows_added += writer.add(batch)
                    conn.execute(update(AffectedImport).where(AffectedImport.id == job.id).values(
                        byte_offset=offset, line_no=line_no, rows_read=report.rows_read,
                        rows_added=report.rows_added, bad_rows=report.bad_rows))
                report.max_batch_s = max(report.max_batch_s, time.monotonic() - t0)
                rows_committed = report.rows_read
                del batch
                if progress is not None:
                    last_report = time.monotonic()
                    progress(_progress(report, 0, rows_committed, offset, total_bytes, start_offset, started,
                                       base_rows))
            with conn.begin():
                conn.execute(update(AffectedImport).where(AffectedImport.id == job.id).values(
                    status="done", finished_at=utcnow()))
                audit(conn, actor=actor, action="affected.import", subject=f"{path.name[:200]} sha256 {sha[:16]}",
                      to_value=f"rows {report.rows_read}, added {report.rows_added}, already present "
                               f"{report.already_present}, bad {report.bad_rows}",
                      reason=f"resumed from line {report.resumed_from_line}" if report.resumed_from_line else "")
        finally:
            writer.close()
    report.elapsed_s = time.monotonic() - started
    return report


def _claim(conn: Connection, sha: str, filename: str, actor: str):
    """The unfinished import of this file to resume, or a new one."""
    table = AffectedImport.__table__
    with conn.begin():
        row = conn.execute(select(table).where(table.c.file_sha256 == sha, table.c.status == "running")
                           .order_by(table.c.id.desc()).limit(1)).first()
        if row is not None:
            return row
        new_id = conn.execute(insert(AffectedImport).values(
            file_sha256=sha, filename=filename[:400], status="running", byte_offset=0, line_no=0, rows_read=0,
            rows_added=0, bad_rows=0, actor=actor[:120], started_at=utcnow()).returning(AffectedImport.id)
        ).scalar_one()
        return conn.execute(select(table).where(table.c.id == new_id)).one()


def _bad(report: ImportReport, line_no: int, reason: str) -> None:
    report.bad_rows += 1
    if len(report.bad_samples) < MAX_BAD_ROWS_KEPT:
        report.bad_samples.append(BadRow(line_no, reason))


def _progress(report, pending, committed, offset, total, start_offset, started, base_rows) -> ImportProgress:
    elapsed = max(time.monotonic() - started, 1e-9)
    done_here = report.rows_read + pending - base_rows
    byte_rate = (offset - start_offset) / elapsed
    return ImportProgress(
        rows_done=report.rows_read + pending, rows_added=report.rows_added, bad_rows=report.bad_rows,
        rows_committed=committed, bytes_done=offset, total_bytes=total, elapsed_s=elapsed,
        rate=done_here / elapsed, eta_s=(total - offset) / byte_rate if byte_rate > 0 else None)


def _layout(first_line: bytes) -> _Layout:
    """Where the number is: the phone column of a header line, else the first column."""
    text = first_line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    delimiter = max(",;\t", key=text.count) if any(d in text for d in ",;\t") else ","
    names = [re.sub(r"[\s-]+", "_", name.strip().strip('"').strip().lower()) for name in text.split(delimiter)]
    for wanted in PHONE_COLUMNS:
        if wanted in names:
            index = names.index(wanted)
            return _Layout(delimiter, index, True, f"header {wanted!r} (column {index + 1})")
    if text and not any(ch.isdigit() for ch in text):
        return _Layout(delimiter, 0, True, f"first column (the header names none of {', '.join(PHONE_COLUMNS)})")
    return _Layout(delimiter, 0, False, "first column (no header)")


def _field(line: bytes, layout: _Layout) -> str:
    """The number's field of one CSV line (quoted fields are read as CSV; a field may not span lines)."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if not text.strip():
        raise InvalidNumber("empty")
    delimiter = layout.delimiter
    if '"' in text:
        try:
            fields = next(csv.reader([text], delimiter=delimiter, strict=True))
        except (csv.Error, StopIteration):
            raise InvalidNumber("unreadable CSV (unbalanced quotes?)") from None
    elif delimiter in text:
        fields = text.split(delimiter)
    else:
        fields = [text]
    if layout.column >= len(fields):
        raise InvalidNumber(f"no column {layout.column + 1}")
    value = fields[layout.column].strip().lstrip("\ufeff")
    if not value:
        raise InvalidNumber("empty")
    return value


class _SQLiteBatches:
    """INSERT OR IGNORE by executemany, keys sorted so the b-tree is walked once per batch.

    The import's connection gets a larger page cache (SQLITE_IMPORT_CACHE_KIB) and a WAL size limit, and
    both are put back before it returns to the pool. Durability is the hotline's own (WAL, synchronous=NORMAL):
    a committed batch survives the process being killed; only an OS crash can lose the last batches, and a
    rerun then imports them again.
    """

    SQL = "INSERT OR IGNORE INTO affected_numbers (number_hash) VALUES (?)"

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        self.saved = {p: self.raw.execute(f"PRAGMA {p}").fetchone()[0] for p in ("cache_size", "journal_size_limit")}
        self.raw.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
        self.raw.execute("PRAGMA journal_size_limit=67108864")  # the WAL shrinks back to 64 MiB after a batch

    def add(self, hashes: list[bytes]) -> int:
        hashes.sort()
        cur = self.raw.cursor()
        try:
            cur.executemany(self.SQL, zip(hashes))
            return cur.rowcount
        finally:
            cur.close()

    def close(self) -> None:
        for pragma, value in self.saved.items():
            self.raw.execute(f"PRAGMA {pragma}={int(value)}")


class _PostgresBatches:
    """Binary COPY into a temporary staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING."""

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        with conn.begin():
            conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS affected_staging (number_hash bytea) "
                                 "ON COMMIT DELETE ROWS")

    def add(self, hashes: list[bytes]) -> int:
        if not hashes:
            return 0
        payload = b"".join((_PGCOPY_HEADER, b"".join(_PGCOPY_ROW + h for h in hashes), _PGCOPY_TRAILER))
        with self.raw.cursor() as cur:
            with cur.copy("COPY affected_staging (number_hash) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            cur.execute("INSERT INTO affected_numbers (number_hash) SELECT number_hash FROM affected_staging "
                        "ON CONFLICT DO NOTHING")
            return cur.rowcount

    def close(self) -> None:
        pass


# -- reporting ---------------------------------------------------------------------------------------------
def progress_line(p: ImportProgress) -> str:
    """One line for a terminal: rows, percent of the file, rate and time left."""
    percent = 100.0 * p.bytes_done / p.total_bytes if p.total_bytes else 100.0
    eta = "--" if p.eta_s is None else _duration(p.eta_s)
    return (f"{p.rows_done:>12,} rows  {percent:5.1f}%  {p.rate:>9,.0f} rows/s  ETA {eta:>7}  "
            f"added {p.rows_added:,}  bad {p.bad_rows:,}")


def report_lines(report: ImportReport) -> list[str]:
    """The import's report for people: counts, then the bad rows with their line numbers and reasons."""
    lines = [f"{report.filename} (sha256 {report.file_sha256[:16]}), numbers from the {report.column}"]
    if report.resumed_from_line:
        lines.append(f"resumed an interrupted import after line {report.resumed_from_line:,}")
    rate = (report.rows_read / report.elapsed_s) if report.elapsed_s else 0.0
    lines += [
        f"rows read:        {report.rows_read:,}",
        f"added:            {report.rows_added:,}",
        f"already present:  {report.already_present:,} (on the list already, or repeated in the file)",
        f"bad rows:         {report.bad_rows:,}",
        f"time:             {_duration(report.elapsed_s)} ({rate:,.0f} rows/s this run)",
    ]
    if report.bad_samples:
        shown = len(report.bad_samples)
        more = f" (the first {shown} of this run)" if report.bad_rows > shown else ""
        lines.append(f"bad rows{more}:")
        lines += [f"  line {b.line_no}: {b.reason}" for b in report.bad_samples]
    if report.resumed_from_line and report.bad_rows > len(report.bad_samples):
        lines.append("  (bad rows before the resume point were listed by the interrupted run)")
    return lines


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
