"""Planning a notice campaign from a list file: one recipient per person, streamed in constant memory.

The file is CSV: a number, then optionally a language and the name of the data exposed for that person,
with or without a header (number/phone, language/lang, exposed). Numbers are sealed and hashed as the
breach list hashes them; a recipient's reference is made only when their notice is sent
(ivr/worker/notices.py), so no code exists before it is texted. A file with any bad row plans nothing: the
rows written so far are removed and every bad row is reported by its line.
"""
from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import delete, func, insert, select, update

from ivr.core.errors import Refused
from ivr.core.notices import parse_quiet_hours, statement_problem, time_zones
from ivr.core.phone_numbers import InvalidNumber, Normalizer
from ivr.store.affected import hasher
from ivr.store.affected_import import file_sha256
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import NoticeCampaign, NoticeOptOut, NoticeRecipient, utcnow
from ivr.store.sealed import keyring_for

NUMBER_COLUMNS = ("number", "phone", "phone_number", "msisdn", "mobile")
LANGUAGE_COLUMNS = ("language", "lang")
EXPOSED_COLUMNS = ("exposed", "data_exposed")
BATCH_ROWS = 50_000  # SQLite writes each index page a batch touches once: larger batches, fewer writes
MAX_BAD_ROWS_KEPT = 100
MAX_RATE = 1000.0
# SQLite's page cache while planning (KiB): a million recipients' number-hash index is about 40 MB, and
# with SQLite's default 2 MB nearly every insert read and wrote a page from disk (100 s instead of 30).
SQLITE_CACHE_KIB = 96 * 1024


@dataclass(frozen=True)
class CampaignSpec:
    """What a campaign says and how it is sent; checked before a line of the file is read."""

    name: str
    statements: dict[str, str]  # language -> the published short statement
    default_language: str
    rate_per_second: float
    quiet_hours: str | None = None
    hotline_number: str = ""
    notice_url: str = ""
    sender: str = ""  # Messaging Service SID or from-number
    exposed_codes: tuple[str, ...] = ()  # the rules' verification.exposed: the only names a row may give

    def problems(self) -> list[str]:
        found = [] if self.name.strip() else ["the campaign needs a name"]
        if not self.statements:
            found.append("no statement: give one per language")
        for lang, text in self.statements.items():
            problem = statement_problem(text)
            if problem:
                found.append(f"the {lang} statement {problem}")
        if self.statements and self.default_language not in self.statements:
            found.append(f"no statement in the default language {self.default_language}")
        if not 0 < self.rate_per_second <= MAX_RATE:
            found.append(f"rate {self.rate_per_second} per second: give one above 0, at most {MAX_RATE:g}")
        if not self.sender:
            found.append("no sender: set TWILIO_MESSAGING_SERVICE_SID or TWILIO_SMS_FROM")
        try:
            parse_quiet_hours(self.quiet_hours)
        except Refused as exc:
            found.append(str(exc))
        return found


@dataclass(frozen=True)
class PlanProgress:
    rows_done: int
    bytes_done: int
    total_bytes: int
    elapsed_s: float


@dataclass
class PlanReport:
    campaign_id: int | None  # None: nothing was planned (bad rows)
    filename: str
    rows_read: int = 0
    recipients: int = 0
    duplicates: int = 0  # a number repeated in the file: one notice each all the same
    opted_out: int = 0  # numbers that replied STOP to an earlier notice
    bad_rows: int = 0
    bad_samples: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        """The report for people (the CLI and the API show these)."""
        if self.campaign_id is None:
            out = [f"{self.filename}: {self.bad_rows:,} bad rows of {self.rows_read:,}; nothing was planned"]
        else:
            out = [f"campaign {self.campaign_id} planned from {self.filename}: {self.recipients:,} recipients "
                   f"({self.duplicates:,} repeated numbers counted once, {self.opted_out:,} opted out earlier) "
                   f"in {self.elapsed_s:.1f} s"]
        shown = len(self.bad_samples)
        if shown:
            out.append("bad rows" + (f" (the first {shown})" if self.bad_rows > shown else "") + ":")
            out += [f"  {line}" for line in self.bad_samples]
        return out


@dataclass(frozen=True)
class _Columns:
    number: int
    language: int | None
    exposed: int | None
    header: bool


def _columns(first: list[str]) -> _Columns:
    names = [n.strip().lower() for n in first]
    number = next((names.index(c) for c in NUMBER_COLUMNS if c in names), None)
    if number is None:  # no header: number, language, exposed by position
        return _Columns(0, 1, 2, header=False)
    language = next((names.index(c) for c in LANGUAGE_COLUMNS if c in names), None)
    exposed = next((names.index(c) for c in EXPOSED_COLUMNS if c in names), None)
    return _Columns(number, language, exposed, header=True)


def plan_campaign(db: Database, path: str | Path, spec: CampaignSpec, *, secret_key: str, actor: str,
                  default_region: str = "US", progress: Callable[[PlanProgress], None] | None = None) -> PlanReport:
    """A new campaign (state planned) with one recipient per distinct number of the file; or, if any row is
    bad, nothing at all and the report names each bad row's line. Raises Refused if the spec is wrong,
    OSError if the file cannot be read."""
    problems = spec.problems()
    if problems:
        raise Refused("; ".join(problems))
    path = Path(path)
    started = time.monotonic()
    report = PlanReport(None, path.name)
    total_bytes = path.stat().st_size
    campaign_id = _new_campaign(db, spec, path, actor)
    try:
        valid = _write_rows(db, path, spec, campaign_id, report, secret_key, default_region, progress,
                            total_bytes, started)
    except BaseException:
        _discard(db, campaign_id)
        raise
    if report.bad_rows:
        _discard(db, campaign_id)
        report.elapsed_s = time.monotonic() - started
        return report
    with db.write() as conn:
        r = NoticeRecipient.__table__
        report.recipients = conn.execute(select(func.count()).where(r.c.campaign_id == campaign_id)).scalar_one()
        report.duplicates = valid - report.recipients
        report.opted_out = conn.execute(update(r).where(
            r.c.campaign_id == campaign_id,
            r.c.number_hash.in_(select(NoticeOptOut.number_hash))).values(
            state="opted_out", number_sealed=None, updated_at=utcnow())).rowcount
        conn.execute(update(NoticeCampaign).where(NoticeCampaign.id == campaign_id).values(
            state="planned", updated_at=utcnow()))
        audit(conn, actor=actor, action="notice.plan", subject=f"campaign {campaign_id} {spec.name[:120]}",
              to_value=f"{report.recipients} recipients from {path.name[:120]}, {report.opted_out} opted out, "
                       f"rate {spec.rate_per_second:g}/s, quiet hours {spec.quiet_hours or 'none'}, "
                       f"languages {', '.join(sorted(spec.statements))}")
    report.campaign_id = campaign_id
    report.elapsed_s = time.monotonic() - started
    return report


def _new_campaign(db: Database, spec: CampaignSpec, path: Path, actor: str) -> int:
    now = utcnow()
    with db.write() as conn:
        return conn.execute(insert(NoticeCampaign).values(
            name=spec.name[:200], state="planning", channels="sms", rate_per_second=spec.rate_per_second,
            quiet_hours=str(parse_quiet_hours(spec.quiet_hours) or "") or None,
            statements=json.dumps(spec.statements, ensure_ascii=False), hotline_number=spec.hotline_number[:32],
            notice_url=spec.notice_url[:500], sender=spec.sender[:64], source=path.name[:400],
            file_sha256=file_sha256(path), created_by=actor[:120], created_at=now, updated_at=now,
        )).inserted_primary_key[0]


def _write_rows(db, path, spec, campaign_id, report, secret_key, default_region, progress, total_bytes,
                started) -> int:
    """Read, check and write the rows in batches; returns how many were valid."""
    normalizer, number_hash, seal = Normalizer(default_region.upper()), hasher(secret_key), keyring_for(db).sealer()
    languages, exposed_codes = set(spec.statements), set(spec.exposed_codes)
    writer = _Writer(_insert(db, NoticeRecipient.__table__))
    valid, batch = 0, []
    with writer, open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        columns = None
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                _bad(report, reader.line_num, f"not CSV ({exc})")
                continue
            if columns is None:
                columns = _columns(row)
                if columns.header:
                    continue
            report.rows_read += 1
            if not row or not any(cell.strip() for cell in row):
                _bad(report, reader.line_num, "empty row")
                continue
            try:
                e164 = normalizer(_cell(row, columns.number))
            except InvalidNumber as exc:
                _bad(report, reader.line_num, f"number: {exc.reason}")
                continue
            language = _cell(row, columns.language).lower() or spec.default_language
            if language not in languages:
                _bad(report, reader.line_num, f"language {language[:20]!r}: no statement in it "
                                              f"(have {', '.join(sorted(languages))})")
                continue
            exposed = _cell(row, columns.exposed).lower() or None
            if exposed is not None and exposed not in exposed_codes:
                _bad(report, reader.line_num, f"exposed {exposed[:40]!r} is not one of the rules' "
                                              f"verification.exposed ({', '.join(sorted(exposed_codes)) or 'none'})")
                continue
            valid += 1
            if report.bad_rows:
                continue  # the file will plan nothing: only look for more bad rows
            batch.append((campaign_id, seal(e164), number_hash(e164), language, exposed, time_zones(e164),
                          _unsent_reference(campaign_id, valid), "queued", 0))
            if len(batch) >= BATCH_ROWS:
                writer.submit(batch)
                batch = []
                if progress is not None:
                    progress(PlanProgress(report.rows_read, fh.buffer.tell() if hasattr(fh, "buffer") else 0,
                                          total_bytes, time.monotonic() - started))
        if batch and not report.bad_rows:
            writer.submit(batch)
    return valid


class _Writer:
    """Writes batches in a thread while the next one is read: the driver leaves Python's lock while SQLite
    or PostgreSQL works, so reading and writing share the machine's two cores. At most two batches are in
    memory; an error in a write is raised at the next submit or at the end."""

    def __init__(self, write):
        self._write, self._pool, self._pending = write, ThreadPoolExecutor(1, thread_name_prefix="plan"), None

    def submit(self, rows: list[tuple]) -> None:
        if self._pending is not None:
            self._pending.result()
        self._pending = self._pool.submit(self._write, rows)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._pending is not None:
                self._pending.result()
        finally:
            self._pool.shutdown(wait=True)


_COLUMNS = ("campaign_id", "number_sealed", "number_hash", "language", "exposed", "time_zones",
            "reference_hash", "state", "attempts", "created_at")


def _insert(db: Database, table):
    """Write rows (tuples in _COLUMNS' order) straight through the driver: SQLAlchemy's per-row parameter
    processing was a third of planning's time. A number already in the campaign is kept once."""
    with db.read() as conn:
        dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO {table.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))}) "
           "ON CONFLICT (campaign_id, number_hash) DO NOTHING")
    stamp = table.c.created_at.type._cached_bind_processor(dialect)

    def write(rows: list[tuple]) -> None:
        now = utcnow()
        now = stamp(now) if stamp else now
        with db.write() as conn:
            if db.is_sqlite:  # the (campaign, number hash) index takes random keys: keep it all in memory
                conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
            conn.exec_driver_sql(sql, [(*row, now) for row in rows])

    return write


def _unsent_reference(campaign_id: int, row: int) -> str:
    """The reference column of a recipient not texted yet: unique, and never the hash of any code (a code's
    hash is hex; this starts with "u"), so no caller can match it. In file order, so the unique index takes
    it at its end (random values cost a page each)."""
    return f"u{campaign_id:010d}{row:021d}"


def _cell(row: list[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _bad(report: PlanReport, line_no: int, reason: str) -> None:
    report.bad_rows += 1
    if len(report.bad_samples) < MAX_BAD_ROWS_KEPT:
        report.bad_samples.append(f"line {line_no}: {reason}")


def _discard(db: Database, campaign_id: int) -> None:
    """Remove a campaign that will not be sent, its recipients (and their numbers) first."""
    with db.write() as conn:
        conn.execute(delete(NoticeRecipient).where(NoticeRecipient.campaign_id == campaign_id))
        conn.execute(delete(NoticeCampaign).where(NoticeCampaign.id == campaign_id))
