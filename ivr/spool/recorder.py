"""Recording calls and their steps without putting a database write in the caller's path.

A webhook appends its events to this worker's spool file: one small write, no fsync; it survives the
process being killed. Writes to the database are idempotent: (CallSid, step) is unique, so a replayed spool
file or a request Twilio retried is recorded once. Two ways to get the spool into the database:

- "process" (what `ivr serve` runs): the workers only append; one `ivr background` process per server,
  started and restarted by gunicorn's master, tails every worker's segments and writes them in batches
  (SpoolWriter). The web workers spend no CPU and no GIL time on database writes, which cost about a third
  of a webhook when done in a thread beside the request.
- "thread" (in-process use: tests, `ivr simulate`): each process keeps an in-memory batch too, and a
  background thread writes it every `interval` seconds.

If the database is down, segments are kept and replayed when it returns; segments left by a dead worker
are picked up by a live writer.
"""
from __future__ import annotations

import atexit
import glob
import json
import logging
import os
import threading
import time
from pathlib import Path

from ivr.spool.appender import SegmentAppender, SpoolObserver
from ivr.spool.batch import write_batch
from ivr.spool.segments import encode, now, parse_lines, replayable
from ivr.store.db import Database

log = logging.getLogger(__name__)


class EventRecorder:
    """Per-process recorder. `record()` is what webhooks call; `flush()` writes everything pending now
    ("thread" mode; in "process" mode the spool writer process does that)."""

    def __init__(self, db: Database, spool_dir: Path, interval: float = 0.05, mode: str = "thread", *,
                 reserve_bytes: int = 1 << 20, memory_bytes: int = 16 << 20, observer: SpoolObserver | None = None):
        if mode not in ("thread", "process"):
            raise ValueError(f"event writer mode must be thread or process, not {mode!r}")
        self.db = db
        self.spool_dir = Path(spool_dir)
        self.interval = interval
        self.spool_only = mode == "process"
        self.reserve_bytes, self.memory_bytes = reserve_bytes, memory_bytes  # process mode: a full disk
        self.observer = observer or SpoolObserver()  # the metrics set theirs (ivr/ops/metrics.py)
        self._appender: SegmentAppender | None = None  # process mode: this worker's segment
        self._lock = threading.Lock()  # guards the batch and the open segment
        self._flush_lock = threading.Lock()  # one flush at a time
        self._batch: list[dict] = []
        self._fd: int | None = None
        self._segment: Path | None = None
        self._seq = 0
        self._pid = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = False
        self.failures = 0
        self._next_orphan_scan = 0.0

    # -- the webhook side -------------------------------------------------------------------------------
    def record(self, rtype: str, /, **data) -> None:
        """Queue one record: 'call' (a call began), 'event' (a step) or 'status' (a status callback)."""
        data["type"] = rtype
        data.setdefault("at", now())
        self._append([((encode(data) + "\n").encode(), data["at"], rtype)], [data])

    def append_lines(self, lines: list[tuple[bytes, float, str]]) -> None:
        """Queue records already encoded, each a whole line (ivr/spool/lines.py) with when it was made and its
        type: a step's records in one write."""
        if lines:
            self._append(lines, None)

    def _append(self, lines: list[tuple[bytes, float, str]], records: list[dict] | None) -> None:
        with self._lock:
            if self.spool_only:
                self._spool_only(lines)
                return
            if records is None:  # thread mode (tests, `ivr simulate`): the batch holds what the writer would read
                records = [json.loads(line) for line, _, _ in lines]
            self._ensure_started()
            if self._fd is None:
                self._open_segment()
            if self._fd is not None:
                try:
                    os.write(self._fd, lines[0][0] if len(lines) == 1 else b"".join(line for line, _, _ in lines))
                except OSError as exc:
                    log.error("spool write failed, event kept in memory only: %s", exc)
                    for data in records:
                        data["_unspooled"] = True  # lost if the database refuses its batch: counted then
            self._batch.extend(records)

    def open_spool(self) -> None:
        """Process mode: open this worker's segment now, so that its disk is reserved before the disk fills
        (a web worker calls it at start; otherwise the first record does)."""
        if self.spool_only and (self._appender is None or self._pid != os.getpid()):
            with self._lock:
                self._spool_only(None)

    def _spool_only(self, lines: list[tuple[bytes, float, str]] | None) -> None:
        """Process mode: append to this worker's segment (ivr/spool/appender.py: a full disk loses nothing
        in silence)."""
        if self._appender is None or self._pid != os.getpid():  # forked: the parent's segment is not ours
            self._pid = os.getpid()
            self._appender = SegmentAppender(self.spool_dir, self._lock, reserve_bytes=self.reserve_bytes,
                                             memory_bytes=self.memory_bytes, observer=self.observer)
            self._appender.open()
        if lines:
            self._appender.append_lines(lines)

    # -- the background side ----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._pid == os.getpid() and self._thread is not None:
            return
        # A forked worker must not inherit its parent's segment or batch.
        self._pid, self._fd, self._segment, self._batch = os.getpid(), None, None, []
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _open_segment(self) -> None:
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            self._segment = self.spool_dir / f"events-{os.getpid()}-{time.time_ns()}-{self._seq}.open"
            self._fd = os.open(self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            log.error("cannot open a spool segment in %s: %s", self.spool_dir, exc)
            self._fd, self._segment = None, None

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the thread must survive anything; the spool keeps the data
                log.exception("event flush failed")

    def flush(self) -> int:
        """Write everything pending (this worker's batch, then any kept or orphaned segments). Returns rows.
        In process mode the writer process does this: nothing to do here."""
        if self.spool_only:
            return 0
        with self._flush_lock:
            with self._lock:
                batch, segment, fd = self._batch, self._segment, self._fd
                self._batch, self._segment, self._fd = [], None, None
            if fd is not None:
                os.close(fd)
            written = 0
            if batch:
                try:
                    written += self._write(batch)
                    if segment is not None:
                        segment.unlink(missing_ok=True)
                except Exception as exc:
                    self.failures += 1
                    log.error("database write failed; %d events kept in the spool for replay: %s", len(batch), exc)
                    unspooled = [r for r in batch if r.get("_unspooled")]
                    for r in unspooled:  # neither on disk nor in the database
                        self.observer.lost(1, "disk-and-database", r["type"])
                    if unspooled:
                        log.error("%d events neither spooled nor written: LOST", len(unspooled))
                    if segment is not None:
                        os.replace(segment, segment.with_suffix(".pending"))
                    return written
            elif segment is not None:
                segment.unlink(missing_ok=True)
            if time.monotonic() >= self._next_orphan_scan:
                written += self._replay_kept()
            return written

    def _replay_kept(self) -> int:
        """Replay segments kept after a failure, or left behind by a worker that died."""
        written = 0
        for path in sorted(glob.glob(str(self.spool_dir / "events-*"))):
            path = Path(path)
            if not replayable(path):
                continue
            claimed = path.with_suffix(f".replay{os.getpid()}")
            try:
                os.rename(path, claimed)  # atomic claim: two live workers never replay one segment
            except OSError:
                continue
            records = parse_lines(claimed.read_bytes(), claimed.name)
            try:
                done = self._write(records) if records else 0
            except Exception as exc:
                os.replace(claimed, path.with_name(path.name.split(".")[0] + ".pending"))
                self._next_orphan_scan = time.monotonic() + 1.0
                log.error("replay of %s failed, will retry: %s", path.name, exc)
                break
            claimed.unlink()
            written += done
            log.info("replayed %d spooled events from %s", done, path.name)
        else:
            self._next_orphan_scan = time.monotonic() + 1.0
        return written

    def _write(self, records: list[dict]) -> int:
        """Write records; returns how many were written (the rest were set aside, see write_batch)."""
        return len(records) - write_batch(self.db, records, self.spool_dir, self.observer)

    def close(self) -> None:
        """Flush this worker's own events and stop (at worker exit); kept segments wait for another worker."""
        if self.spool_only:
            if self._appender is not None:
                self._appender.close()
            return
        if self._pid != os.getpid() or self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._next_orphan_scan = float("inf")
        try:
            self.flush()
        except Exception:
            log.exception("final event flush failed; the spool keeps the events")
