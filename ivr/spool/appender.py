"""One web worker's spool segment ("process" mode): appended to in the caller's path, never losing a record
in silence when the disk is full.

Three layers, measured on a full filesystem (docs/failure-modes.md, docs/architecture.md):
1. Space reserved in advance: each segment keeps `reserve_bytes` allocated past its end (fallocate with
   FALLOC_FL_KEEP_SIZE), topped up as it fills. When the disk fills, appends go on into the reserve: on
   disk, so a worker killed meanwhile loses nothing.
2. When the reserve is used up too, records wait in this worker's memory, bounded by `memory_bytes`, in
   order; a thread writes them out as soon as the disk takes them again (and every later record queues
   behind them, so the order holds).
3. Past that bound, a record is dropped and counted (the observer's `lost`): /healthz and /metrics say so
   within seconds. Records still held in memory at exit are tried once more, then counted the same way.
"""
from __future__ import annotations

import atexit
import ctypes
import errno
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

log = logging.getLogger("ivr.spool.recorder")  # the name operators' log filters know

SEGMENT_MAX_BYTES = 8 << 20  # a worker starts a new spool segment past this size


class SpoolObserver:
    """What the spool tells the metrics (ivr/ops/metrics.py implements it; this one tells nobody)."""

    def lost(self, records: int, reason: str, record_type: str) -> None:
        """Records of a type ('event', 'status', 'callback', 'job', ...) dropped for good: never written to
        disk or the database."""

    def held(self, records: dict[str, int], nbytes: int, oldest_at: float | None) -> None:
        """Records (by type) this process holds in memory because the spool's disk refused them."""

    def backlog(self, records: int, nbytes: int, oldest_at: float | None) -> None:
        """Records spooled and not yet in the database (the spool writer says, after each pass)."""


def _fallocate():
    """libc's fallocate, for FALLOC_FL_KEEP_SIZE: os.posix_fallocate cannot reserve without growing the file,
    and a segment that grew zeros would no longer say where its records end. None where there is none."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (AttributeError, OSError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    return fn


_FALLOCATE = _fallocate()
FALLOC_FL_KEEP_SIZE = 1


def reserve(fd: int, offset: int, length: int) -> bool:
    """Allocate disk space for `length` bytes from `offset` without changing the file's size."""
    if _FALLOCATE is None or length <= 0:
        return False
    return _FALLOCATE(fd, FALLOC_FL_KEEP_SIZE, offset, length) == 0


class SegmentAppender:
    """Appends whole lines to this process's segment; see the module's docstring for a full disk.

    Not thread-safe on its own: the recorder calls `append` under its lock; the drain thread takes the same."""

    DRAIN_EVERY_S = 0.5
    LOG_EVERY_S = 5.0  # one line a while about a full disk, not one per record

    def __init__(self, spool_dir: Path, lock: threading.Lock, *, reserve_bytes: int = 1 << 20,
                 memory_bytes: int = 16 << 20, observer: SpoolObserver | None = None):
        self.spool_dir = Path(spool_dir)
        self.reserve_bytes = reserve_bytes
        self.memory_bytes = memory_bytes
        self.observer = observer or SpoolObserver()
        self.lost = 0
        self._lock = lock
        self._pid = os.getpid()
        self._fd: int | None = None
        self._segment: Path | None = None
        self._seq = 0
        self._written = 0  # bytes in the open segment
        self._reserved_to = 0  # disk allocated up to here (past the end: the reserve)
        self._held: deque[tuple[bytes, float, str]] = deque()  # line, when made, record type
        self._held_bytes = 0
        self._held_types: dict[str, int] = {}  # how many of each type are held (kept at 0 once seen: reported)
        self._drainer: threading.Thread | None = None
        self._logged_at: dict[str, float] = {}  # per kind of message
        atexit.register(self.close)

    def open(self) -> None:
        """Open the segment and reserve its disk now (at worker start, before the disk may fill)."""
        try:
            if self._fd is None:
                self._open_segment()
        except OSError as exc:
            log.error("cannot open a spool segment in %s: %s", self.spool_dir, exc)

    # -- the webhook side ------------------------------------------------------------------------------
    def append(self, line: bytes, at: float, record_type: str) -> None:
        """Spool one line (called under the lock). Never raises: a failure is held or counted."""
        if self._held:  # the disk refused earlier records: this one waits behind them, in order
            self._hold(line, at, record_type)
            return
        try:
            self._write(line)
        except OSError as exc:
            self._say("held", f"spool write failed ({exc.strerror or exc}): records are kept in memory "
                      f"(up to {self.memory_bytes} bytes) until the disk takes them")
            self._hold(line, at, record_type)

    def append_lines(self, lines: list[tuple[bytes, float, str]]) -> None:
        """Spool several lines (line, when made, record type) with one write when the disk takes them all."""
        if len(lines) > 1 and not self._held:
            try:
                self._write(b"".join(line for line, _, _ in lines))
                return
            except OSError:
                pass  # nothing of them is on disk (_write takes a short write back): one by one, held in order
        for line, at, record_type in lines:
            self.append(line, at, record_type)

    def _write(self, line: bytes) -> None:
        if self._fd is not None and self._written >= SEGMENT_MAX_BYTES:
            self._close_segment()
        if self._fd is None:
            self._open_segment()
        n = os.write(self._fd, line)
        if n < len(line):  # a short write on a full disk: take the piece back, or the next line is torn
            os.ftruncate(self._fd, self._written)
            raise OSError(errno.ENOSPC, "No space left on device (short write)")
        self._written += n
        if self.reserve_bytes and self._reserved_to - self._written < self.reserve_bytes // 2:
            if reserve(self._fd, self._written, self.reserve_bytes):
                self._reserved_to = self._written + self.reserve_bytes
            elif self._reserved_to > self._written:
                left = self._reserved_to - self._written
                self._say("reserve", f"spool disk full: writing into the reserve ({left} bytes left)")

    def _open_segment(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        segment = self.spool_dir / f"events-{os.getpid()}-{time.time_ns()}-{self._seq}.open"
        self._fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment, self._written, self._reserved_to = segment, 0, 0
        if self.reserve_bytes and reserve(self._fd, 0, self.reserve_bytes):
            self._reserved_to = self.reserve_bytes

    def _close_segment(self) -> None:
        fd, segment, self._fd, self._segment = self._fd, self._segment, None, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, self._written)  # gives the unused reserve back
        except OSError:
            pass
        os.close(fd)
        try:
            os.replace(segment, segment.with_suffix(".closed"))  # complete: the writer may finish it
        except OSError as exc:
            log.error("could not close spool segment %s: %s", segment.name, exc)

    # -- a full disk -----------------------------------------------------------------------------------
    def _hold(self, line: bytes, at: float, record_type: str) -> None:
        if self._held_bytes + len(line) > self.memory_bytes:
            self.lost += 1
            self.observer.lost(1, "memory-full", record_type)
            self._say("lost", f"spool disk full and {self.memory_bytes} bytes held in memory: records are being "
                      f"LOST ({self.lost} so far in worker {os.getpid()})", error=True)
            return
        self._held.append((line, at, record_type))
        self._held_types[record_type] = self._held_types.get(record_type, 0) + 1
        self._held_bytes += len(line)
        self._report_held()
        if self._drainer is None or not self._drainer.is_alive():
            self._drainer = threading.Thread(target=self._drain_loop, name="spool-drain", daemon=True)
            self._drainer.start()

    def _drain(self, limit: int | None = None) -> bool:
        """Write held records to disk, oldest first, until the disk refuses one (or `limit` are written).
        True when none is left."""
        if not self._held:
            return True
        while self._held and limit != 0:
            line, _, record_type = self._held[0]
            try:
                self._write(line)
            except OSError:
                break
            limit = None if limit is None else limit - 1
            self._held.popleft()
            self._held_types[record_type] -= 1
            self._held_bytes -= len(line)
        self._report_held()
        if not self._held:
            log.warning("spool disk takes records again: everything held in memory is spooled")
        return not self._held

    def _drain_loop(self) -> None:
        pause = self.DRAIN_EVERY_S
        while True:
            time.sleep(pause)
            with self._lock:  # a thousand at a time: webhooks wait for this lock
                before = self._held_bytes
                if self._pid != os.getpid() or self._drain(limit=1000):
                    return
                pause = 0.0 if self._held_bytes < before else self.DRAIN_EVERY_S

    def _report_held(self) -> None:
        self.observer.held(dict(self._held_types), self._held_bytes, self._held[0][1] if self._held else None)

    def _say(self, kind: str, message: str, error: bool = False) -> None:
        if time.monotonic() - self._logged_at.get(kind, -self.LOG_EVERY_S) >= self.LOG_EVERY_S:
            self._logged_at[kind] = time.monotonic()
            (log.error if error else log.warning)(message)

    # -- exit ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """At exit: spool what is held if the disk now takes it, count the rest as lost, close the segment."""
        if self._pid != os.getpid():
            return
        with self._lock:
            if self._held and not self._drain():
                self.lost += len(self._held)
                for _, _, record_type in self._held:
                    self.observer.lost(1, "exit", record_type)
                log.error("worker %d exits with %d spooled records the disk would not take: LOST",
                          os.getpid(), len(self._held))
                self._held.clear()
                self._held_bytes = 0
                self._held_types = dict.fromkeys(self._held_types, 0)
                self._report_held()
            self._close_segment()
