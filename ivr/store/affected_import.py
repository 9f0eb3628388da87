"""Importing a breach list (CSV) into the affected-customer list: streamed, batched, idempotent, resumable.

Imports stream the file from a byte offset and commit their progress with each batch, so they resume.
"""
from __future__ import annotations

import csv
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import Connection, insert, select, update

from ivr.core.phone_numbers import InvalidNumber, Normalizer
from ivr.store.affected import hasher
from ivr.store.affected_writes import PostgresBatches, SQLiteBatches
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import AffectedImport, utcnow

PHONE_COLUMNS = ("phone", "phone_number", "msisdn", "number")  # in order of preference ("number" is vague)
MAX_BAD_ROWS_KEPT = 100
# Rows read per batch. SQLite writes out every b-tree page a batch touches, and random keys touch nearly all
# of them, so larger batches write far less (about half the time: docs/performance.md). PostgreSQL logs row
# by row and cares less.
BATCH_SQLITE = 500_000
BATCH_POSTGRESQL = 200_000


# -- import ------------------------------------------------------------------------------------------------
MAX_LINE_BYTES = 4096  # longer lines are bad rows, skipped in pieces: memory stays constant whatever the file


@dataclass(frozen=True)
class BadRow:
    line_no: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}"


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
        store = SQLiteBatches(conn) if db.is_sqlite else PostgresBatches(conn)
        try:
            _Run(conn, store, fh, offset, line_no, total_bytes, layout, normalizer, hasher(secret_key),
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
    thread commits the last one (faster than in turn); at most two batches are in memory. SQLite writes in
    this process: a writer thread, starved of the GIL by the reading, held the write lock for seconds and
    was slower overall, so there they take turns (docs/performance.md).
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
        lines += [f"  {bad}" for bad in report.bad_samples]
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
