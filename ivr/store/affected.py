"""The affected-customer list ("was my data in the breach?"): numbers kept only as keyed hashes, from CSV.

A number is normalised to E.164 and hashed with HMAC-SHA256 under a key derived from IVR_SECRET_KEY; the
first 16 bytes are the primary key of `affected_numbers`, so a lookup is one primary-key probe at any size.
Imports stream the file from a byte offset and commit their progress with each batch, so they resume.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata
from sqlalchemy import Connection, bindparam, insert, select, update

from ivr.core.errors import Refused
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import AffectedImport, AffectedNumber, utcnow

HASH_BYTES = 16
PHONE_COLUMNS = ("phone", "phone_number", "msisdn", "number")  # in order of preference ("number" is vague)
MAX_BAD_ROWS_KEPT = 100
# Rows read per batch. SQLite writes out every b-tree page a batch touches, and random keys touch nearly all
# of them, so larger batches write far less (measured, plain sqlite3 towards 3M rows: 15-23 s per million
# rows in 100k-row transactions, 7-9 s in sorted 500k-row batches). PostgreSQL logs row by row and cares less.
BATCH_SQLITE = 500_000
BATCH_POSTGRESQL = 200_000
# Keys per SQLite write transaction (a batch is sorted, then written in key ranges). Measured importing 10M
# rows: the longest transaction took 0.5 s, against 15.5 s with one transaction per 500k batch, when the
# hotline's writers give up after their 5 s busy timeout ("database is locked").
SQLITE_TXN_ROWS = 50_000
SQLITE_IMPORT_CACHE_KIB = 32 * 1024  # page cache of the import connection only (the default is 2 MiB)


class InvalidNumber(Refused):
    """A string that is not a valid phone number; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- hashing -----------------------------------------------------------------------------------------------
def hash_key(secret_key: str) -> bytes:
    """The HMAC key for affected numbers, derived from the secret as caller_identity derives its own."""
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
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line", "mobile")


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
    known = digits[:1] not in ("", "0")
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits)) if known else None
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
    with db.read() as conn:
        return conn.execute(_LOOKUP, {"h": _hasher(secret_key)(e164)}).first() is not None


# Built once: building the statement per call cost as much as running it (measured: ~200 µs of ~400).
_LOOKUP = select(AffectedNumber.number_hash).where(AffectedNumber.number_hash == bindparam("h"))


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
    rows_this_run: int = 0  # rows_read counts earlier, interrupted runs too
    elapsed_s: float = 0.0
    longest_write_s: float = 0.0  # the longest write transaction (SQLite: how long other writers may wait)

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
    importing a file again adds nothing. `progress` is called from this thread about every
    `progress_interval` seconds and after each commit; an exception it raises stops the import (resumable).
    Raises OSError if the file cannot be read, ValueError for an unknown region.
    """
    path = Path(path)
    normalizer = Normalizer(default_region.upper())
    total_bytes = path.stat().st_size
    sha = file_sha256(path)
    batch_size = batch_size or (BATCH_SQLITE if db.is_sqlite else BATCH_POSTGRESQL)
    with open(path, "rb") as fh, db.writer.connect() as conn:
        layout = _layout(fh.readline(MAX_LINE_BYTES))
        job = _claim(conn, sha, path.name, actor)
        report = ImportReport(import_id=job.id, filename=path.name, file_sha256=sha,
                              column=layout.description, rows_read=job.rows_read, rows_added=job.rows_added,
                              bad_rows=job.bad_rows, resumed_from_line=job.line_no)
        offset, line_no = job.byte_offset, job.line_no
        if offset == 0 and layout.header:
            fh.seek(0)
            offset, line_no = len(fh.readline(MAX_LINE_BYTES)), 1
        fh.seek(offset)
        store = _SQLiteBatches(conn) if db.is_sqlite else _PostgresBatches(conn)
        try:
            _Run(conn, store, fh, offset, line_no, total_bytes, layout, normalizer, _hasher(secret_key),
                 report, progress, progress_interval).run(batch_size)
        finally:
            store.close()
        with conn.begin():
            conn.execute(update(AffectedImport).where(AffectedImport.id == job.id).values(
                status="done", finished_at=utcnow()))
            audit(conn, actor=actor, action="affected.import", subject=f"{path.name[:200]} sha256 {sha[:16]}",
                  to_value=f"rows {report.rows_read}, added {report.rows_added}, already present "
                           f"{report.already_present}, bad {report.bad_rows}",
                  reason=f"resumed after line {report.resumed_from_line}" if report.resumed_from_line else "")
    return report


class _Run:
    """One run of an import: read and hash a batch, write it; on PostgreSQL the two overlap.

    On PostgreSQL the writing happens in the server, so this thread reads the next batch while a writer
    thread commits the last one (measured, 3M rows: 37-46 s against 47-64 s in turn); at most two batches are
    in memory. SQLite writes in this process: a writer thread, starved of the GIL by the reading, held the
    write lock for seconds and was slower overall (4M rows: 49 s against 39 s), so there they take turns.
    """

    def __init__(self, conn, store, fh, offset, line_no, total_bytes, layout, normalizer, hasher, report,
                 progress, progress_interval):
        self.conn, self.store, self.fh = conn, store, fh
        self.offset, self.line_no, self.total_bytes = offset, line_no, total_bytes
        self.layout, self.normalizer, self.hasher = layout, normalizer, hasher
        self.report, self.progress, self.progress_interval = report, progress, progress_interval
        self.rows_committed = self.base_rows = report.rows_read
        self.start_offset = offset
        self.started = self.last_progress = time.monotonic()

    def run(self, batch_size: int) -> None:
        if not self.store.overlap:
            return self._run_in_turn(batch_size)
        pending = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="affected-import") as writer:
            try:
                while True:
                    batch, lines = self._read(batch_size)
                    if pending is not None:
                        pending.result()  # the previous batch is committed (or its error is raised here)
                        self._tell(0)
                    if lines:
                        state = dict(byte_offset=self.offset, line_no=self.line_no,
                                     rows_read=self.report.rows_read, bad_rows=self.report.bad_rows)
                        pending = writer.submit(self._write, batch, state)
                    else:
                        pending = None
                    del batch
                    if lines < batch_size:
                        break
                if pending is not None:
                    pending.result()
                    self._tell(0)
            finally:
                if pending is not None:  # stopped mid-way: let the batch in flight finish before returning
                    futures_wait([pending])
        self.report.elapsed_s = time.monotonic() - self.started
        self.report.rows_this_run = self.report.rows_read - self.base_rows

    def _run_in_turn(self, batch_size: int) -> None:
        while True:
            batch, lines = self._read(batch_size)
            if lines:
                self._write(batch, dict(byte_offset=self.offset, line_no=self.line_no,
                                        rows_read=self.report.rows_read, bad_rows=self.report.bad_rows))
                self._tell(0)
            if lines < batch_size:
                break
        self.report.elapsed_s = time.monotonic() - self.started
        self.report.rows_this_run = self.report.rows_read - self.base_rows

    def _read(self, batch_size: int) -> tuple[list[bytes], int]:
        """Up to batch_size lines: their numbers' hashes, and how many lines were read."""
        readline, normalizer, hasher, layout, report = (self.fh.readline, self.normalizer, self.hasher,
                                                        self.layout, self.report)
        batch: list[bytes] = []
        append = batch.append
        n = 0
        while n < batch_size:
            line = readline(MAX_LINE_BYTES)
            if not line:
                break
            n += 1
            self.offset += len(line)
            self.line_no += 1
            if len(line) == MAX_LINE_BYTES and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # skip the rest of an over-long line
                    line = readline(MAX_LINE_BYTES)
                    self.offset += len(line)
                _bad(report, self.line_no, f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            try:
                append(hasher(normalizer(_field(line, layout))))
            except InvalidNumber as exc:
                _bad(report, self.line_no, exc.reason)
            if not n & 0xFFF and self.progress is not None:
                if time.monotonic() - self.last_progress >= self.progress_interval:
                    self._tell(n)
        report.rows_read += n
        return batch, n

    def _write(self, batch: list[bytes], state: dict) -> None:
        """In the writer thread: the batch, and with its last rows the import's progress."""
        base = self.report.rows_added
        table = AffectedImport.__table__

        def record(conn: Connection, added: int, final: bool) -> None:
            conn.execute(update(table).where(table.c.id == self.report.import_id).values(
                rows_added=base + added, **(state if final else {})))

        self.report.rows_added = base + self.store.write(self.conn, batch, record)
        self.rows_committed = state["rows_read"]
        self.report.longest_write_s = self.store.longest_write_s

    def _tell(self, pending_rows: int) -> None:
        if self.progress is None:
            return
        now = self.last_progress = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rows_done = self.report.rows_read + pending_rows
        byte_rate = (self.offset - self.start_offset) / elapsed
        self.progress(ImportProgress(
            rows_done=rows_done, rows_added=self.report.rows_added, bad_rows=self.report.bad_rows,
            rows_committed=self.rows_committed, bytes_done=self.offset, total_bytes=self.total_bytes,
            elapsed_s=elapsed, rate=(rows_done - self.base_rows) / elapsed,
            eta_s=(self.total_bytes - self.offset) / byte_rate if byte_rate > 0 else None))


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


def _layout(first_line: bytes) -> _Layout:
    """Where the number is: the phone column of a header line, else the first column."""
    text = first_line.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    delimiter = max(",;\t", key=text.count) if any(d in text for d in ",;\t") else ","
    names = [re.sub(r"[\s-]+", "_", name.strip().strip('"').strip().lower())
             for name in text.split(delimiter)]
    for wanted in PHONE_COLUMNS:
        if wanted in names:
            index = names.index(wanted)
            return _Layout(delimiter, index, True, f"header {wanted!r} (column {index + 1})")
    if text and not any(ch.isdigit() for ch in text):
        return _Layout(delimiter, 0, True,
                       f"first column (the header names none of {', '.join(PHONE_COLUMNS)})")
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
    """INSERT OR IGNORE by executemany, a batch's keys sorted and written in key-range transactions.

    Random keys touch nearly every b-tree page, and SQLite writes each page a transaction touched to the WAL
    and back: so batches are large (BATCH_SQLITE rows) to touch each page once per batch, and sorted, so that
    transactions of SQLITE_TXN_ROWS consecutive keys each write only their own pages; the write lock is held
    half a second at most at 10 million rows, not for the whole batch. The file offset advances with the
    batch's last transaction: a rerun after a crash in mid-batch reads the batch again and adds nothing twice,
    and rows_added (committed with each transaction) stays exact. The import's connection gets a larger page
    cache and a WAL size limit, put back before it returns to the pool. Durability is the hotline's own (WAL,
    synchronous=NORMAL): a commit survives the process being killed; an OS crash may lose the last ones, which
    a rerun imports again.
    """

    SQL = "INSERT OR IGNORE INTO affected_numbers (number_hash) VALUES (?)"
    overlap = False  # see _Run

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        self.longest_write_s = 0.0
        self.saved = {p: self.raw.execute(f"PRAGMA {p}").fetchone()[0]
                      for p in ("cache_size", "journal_size_limit")}
        self.raw.execute(f"PRAGMA cache_size=-{SQLITE_IMPORT_CACHE_KIB}")
        self.raw.execute("PRAGMA journal_size_limit=67108864")  # the WAL shrinks back to 64 MiB after a batch

    def write(self, conn: Connection, hashes: list[bytes], record) -> int:
        hashes.sort()
        added = 0
        for start in range(0, max(len(hashes), 1), SQLITE_TXN_ROWS):
            t0 = time.monotonic()
            with conn.begin():
                cur = self.raw.cursor()
                try:
                    cur.executemany(self.SQL, zip(hashes[start:start + SQLITE_TXN_ROWS]))
                    added += max(cur.rowcount, 0)
                finally:
                    cur.close()
                record(conn, added, start + SQLITE_TXN_ROWS >= len(hashes))
            self.longest_write_s = max(self.longest_write_s, time.monotonic() - t0)
        return added

    def close(self) -> None:
        for pragma, value in self.saved.items():
            self.raw.execute(f"PRAGMA {pragma}={int(value)}")


class _PostgresBatches:
    """Binary COPY into a temporary staging table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING.

    One transaction per batch: PostgreSQL locks rows, not the table, so nobody waits for it.
    """

    overlap = True  # see _Run

    def __init__(self, conn: Connection):
        self.raw = conn.connection.driver_connection
        self.longest_write_s = 0.0
        with conn.begin():
            conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS affected_staging (number_hash bytea) "
                                 "ON COMMIT DELETE ROWS")

    def write(self, conn: Connection, hashes: list[bytes], record) -> int:
        t0 = time.monotonic()
        with conn.begin():
            added = self._add(hashes)
            record(conn, added, True)
        self.longest_write_s = max(self.longest_write_s, time.monotonic() - t0)
        return added

    def _add(self, hashes: list[bytes]) -> int:
        if not hashes:
            return 0
        payload = b"".join((_PGCOPY_HEADER, b"".join(_PGCOPY_ROW + h for h in hashes), _PGCOPY_TRAILER))
        with self.raw.cursor() as cur:
            with cur.copy("COPY affected_staging (number_hash) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(payload)
            # In key order, the index is walked once per batch: measured 13 µs a row against 20 unordered.
            cur.execute("INSERT INTO affected_numbers (number_hash) SELECT number_hash FROM affected_staging "
                        "ORDER BY number_hash ON CONFLICT DO NOTHING")
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
    rate = (report.rows_this_run / report.elapsed_s) if report.elapsed_s else 0.0
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
