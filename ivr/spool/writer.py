"""The spool writer (`ivr background`, one per server): tails every worker's segments, writes them in batches."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from ivr.spool.appender import SpoolObserver
from ivr.spool.batch import write_batch
from ivr.spool.segments import alive, parse_lines, replayable, segment_pid
from ivr.spool.writer_status import HEARTBEAT, WriterStatus
from ivr.store.db import Database

log = logging.getLogger("ivr.spool.recorder")  # the name operators' log filters know


class SpoolWriter:
    """Process mode: tail every worker's spool segments and write them to the database in batches.

    One per server (`ivr background`, started by `ivr serve`). Each pass reads what was appended since the
    last one (whole lines only), writes it all in one transaction, then remembers how far it got, in memory
    and in `writer-offsets.json`. A restart re-reads at most one pass worth: the writes are idempotent.
    Closed segments and those of dead workers are deleted once written; nothing is deleted before that.
    """

    OFFSETS = "writer-offsets.json"
    HEARTBEAT = HEARTBEAT  # the probes and the master's supervisor read its age (ivr/spool/writer_status.py)
    MAX_PASS_BYTES = 16 << 20  # per pass, over all segments: bounds memory and the transaction
    # Busy (a pass wrote at least BUSY_RECORDS: 500 records a second at the default interval): the next pass
    # waits BUSY_STRETCH intervals (0.5 s), so each pass's own cost (the commit, the WAL pages of the
    # indexes, which more records share, the offsets file) is shared by five times the records. Measured
    # under `make bench`: about half the writer's CPU per call (docs/performance.md). Records then reach
    # the database within about half a second instead of a tenth; nothing that reads them needs sooner.
    BUSY_RECORDS, BUSY_STRETCH = 50, 5

    def __init__(self, db: Database, spool_dir: Path, interval: float = 0.1, nice: int = 0):
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.failures = 0
        self.written = 0
        self.status = WriterStatus(self.spool_dir)
        self.observer = SpoolObserver()  # `ivr background` sets the metrics' (backlog, records lost)
        self._offsets: dict[str, int] = {}
        self._offsets_unsaved = False
        self._load_offsets()
        if nice and not db.is_sqlite:
            self._nice_backends(nice)

    def _nice_backends(self, nice: int) -> None:
        """PostgreSQL on this host: put the server processes doing our writes below the web workers too.

        Works when allowed (same user, or root); otherwise, or for a remote server, nothing changes."""
        from sqlalchemy import event

        @event.listens_for(self.db.engine, "connect")
        def _renice(dbapi_conn, _record):
            try:
                cur = dbapi_conn.cursor()
                cur.execute("SELECT pg_backend_pid(), inet_server_addr() IS NULL OR host(inet_server_addr()) "
                            "IN ('127.0.0.1', '::1')")
                pid, local = cur.fetchone()
                cur.close()
                dbapi_conn.commit()
                if local:
                    os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), nice))
            except Exception as exc:  # not permitted, or not this host: harmless
                log.debug("could not renice the database backend: %s", exc)

    def _load_offsets(self) -> None:
        try:
            data = json.loads((self.spool_dir / self.OFFSETS).read_text())
            self._offsets = {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            self._offsets = {}

    def _save_offsets(self) -> None:
        tmp = self.spool_dir / f".{self.OFFSETS}.tmp"
        try:
            tmp.write_text(json.dumps(self._offsets))
            os.replace(tmp, self.spool_dir / self.OFFSETS)
            self._offsets_unsaved = False
        except OSError as exc:  # a restart then re-reads a little more: harmless
            if not self._offsets_unsaved:  # once, not ten times a second while the disk is full
                log.warning("could not save spool offsets (said once until they are saved again): %s", exc)
            self._offsets_unsaved = True

    def beat(self) -> None:
        """Say this writer is alive, and how its writing goes (/healthz and the supervisor read it)."""
        self.status.beat()

    def pass_once(self) -> int:
        """Write everything readable now; returns the number of records written (0 if the database failed)."""
        plan, records, budget, pending = [], [], self.MAX_PASS_BYTES, []  # pending: bytes not yet written
        for name in sorted(os.listdir(self.spool_dir)) if self.spool_dir.is_dir() else []:
            if not name.startswith("events-"):
                continue
            if budget <= 0:  # left for the next pass: still backlog
                pending.append(self._unread(name))
                continue
            path = self.spool_dir / name
            base, _, suffix = name.partition(".")
            live = suffix == "open" and alive(segment_pid(base))
            if suffix.startswith("replay") and not replayable(path):
                continue  # a thread-mode process is replaying it right now
            start = self._offsets.get(base, 0)
            try:
                with open(path, "rb") as fh:
                    pending.append(os.fstat(fh.fileno()).st_size - start)
                    fh.seek(start)
                    data = fh.read(budget)
                    at_end = not fh.read(1)
            except FileNotFoundError:
                continue
            budget -= len(data)
            finished = not live and at_end
            if not finished:
                cut = data.rfind(b"\n") + 1  # whole lines only: the rest may still be being written
                data = data[:cut]
            records.extend(parse_lines(data, name))
            plan.append((path, base, start + len(data), finished, start))
        set_aside = 0
        if records:
            self.status.pass_started()
            try:
                set_aside = write_batch(self.db, records, self.spool_dir, self.observer)
            except Exception as exc:
                self.failures += 1
                self.status.pass_ended(exc)
                log.error("database write failed; %d spooled events kept for the next pass: %s", len(records), exc)
                self._report_backlog(sum(pending), records)
                return 0
            self.status.pass_ended(None)
        elif self.status.probe_due():
            self.status.probe(self.db)  # nothing to write: find out now whether the next call's records could be
        before = dict(self._offsets)
        for path, base, offset, finished, _ in plan:
            if finished:
                path.unlink(missing_ok=True)
                self._offsets.pop(base, None)
            else:
                self._offsets[base] = offset
        present = {name.partition(".")[0] for name in os.listdir(self.spool_dir)} if self.spool_dir.is_dir() else set()
        for base in [b for b in self._offsets if b not in present]:
            del self._offsets[base]  # replayed and removed by someone else
        if self._offsets != before or self._offsets_unsaved:  # an idle pass writes nothing (ten times a second)
            self._save_offsets()
        self._report_backlog(sum(pending) - sum(offset - start for _, _, offset, _, start in plan), [])
        self.written += len(records) - set_aside
        return len(records) - set_aside

    def _unread(self, name: str) -> int:
        try:
            return (self.spool_dir / name).stat().st_size - self._offsets.get(name.partition(".")[0], 0)
        except OSError:
            return 0

    def _report_backlog(self, nbytes: int, unwritten: list[dict]) -> None:
        """Tell the metrics what waits in the spool after this pass: the bytes not yet written, and of the
        records read, those the database did not take (the oldest of them says how long they have waited)."""
        oldest = min((r["at"] for r in unwritten if isinstance(r.get("at"), (int, float))), default=None)
        self.observer.backlog(len(unwritten), max(nbytes, 0), oldest)

    def run(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; then drain what is left (bounded by a few seconds)."""
        pause = self.interval
        self.status.run(stop)  # beats from its own thread: a pass waiting for a lock is slow, not dead
        while not stop.is_set():
            started, failures, written = time.monotonic(), self.failures, 0
            try:
                written = self.pass_once()
                ok = self.failures == failures
            except Exception as exc:
                log.exception("spool pass failed")
                self.status.pass_ended(exc)
                ok = False
            if not ok:
                pause = min(pause * 2, 5.0)  # a database that is down: back off
            else:
                pause = self.interval * (self.BUSY_STRETCH if written >= self.BUSY_RECORDS else 1)
            stop.wait(max(0.0, pause - (time.monotonic() - started)))
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            failures = self.failures
            try:
                if not self.pass_once() and self.failures == failures:
                    break
            except Exception:
                log.exception("final spool pass failed; the spool keeps the events")
                break
            if self.failures != failures:
                time.sleep(0.5)
