"""SQLite: has anything committed since the last look? Answered from the WAL index, without a query.

In WAL mode every connection to a database shares its wal-index, the `-shm` file beside it, whose first 48
bytes are the WAL-index header (https://www.sqlite.org/walformat.html, "The WAL-Index Header"). Every
commit, by any writer (this hotline, `ivr` commands, the sqlite3 shell), moves `mxFrame` (the last valid
frame) or, when the WAL restarts, the salts; a reader holding a snapshot never writes it. So a header that
did not change since the state row was last read means the row did not change either: the webhook answers
from memory, at the cost of one `pread` of 48 bytes, instead of a SELECT on every request. Any commit
(a call record written by the spool writer too) means "read the row again": at most a few reads a second.

Why `pread` on our own descriptor and not an mmap: SQLite truncates the `-shm` file when the first
connection after the last one opens the database, and a mapped page past the end of a file is SIGBUS; a
read just comes back short. Why the descriptor is never closed: closing any descriptor of a file drops
every POSIX lock this process holds on it, and SQLite's own connections hold theirs on the `-shm` file:
one descriptor per file per process, kept for the process's life.
"""
from __future__ import annotations

import os
import threading
import time

HEADER_BYTES = 48  # the first copy of the WAL-index header
RECHECK_S = 1.0  # how often the `-shm` file is checked to be the one SQLite uses (it is replaced at times)

_descriptors: dict[str, tuple[int, int]] = {}  # path -> (descriptor, inode), this process's, never closed
_lock = threading.Lock()


def _descriptor(path: str) -> int | None:
    """This process's descriptor on the `-shm` file now at `path` (None: there is none yet)."""
    try:
        inode = os.stat(path).st_ino
    except OSError:
        return None
    with _lock:
        known = _descriptors.get(path)
        if known is not None and known[1] == inode:
            return known[0]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        # A replaced file's descriptor stays open (see the module's docstring): one per replacement, rare.
        _descriptors[path] = (fd, os.fstat(fd).st_ino)
        return fd


def shm_path(db) -> str | None:
    """The `-shm` file of a SQLite database file; None for anything else (memory, a URI, PostgreSQL)."""
    if not db.is_sqlite:
        return None
    name = db.engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return os.path.abspath(name) + "-shm"


class WalWatch:
    """The SQLite counterpart of the LISTEN connection (ivr/store/state.py's StateWatch), with its interface:
    `changed()` before each webhook, `listening` when its answer can be trusted."""

    def __init__(self, db):
        self.db = db
        self._fd: int | None = None
        self._seen: bytes | None = None
        self._checked_at = 0.0

    @property
    def listening(self) -> bool:
        return self._fd is not None

    def changed(self) -> bool:
        """False only when the header is readable and the same as at the last call."""
        now = time.monotonic()
        if self._fd is None or now >= self._checked_at + RECHECK_S:
            self._checked_at = now
            path = shm_path(self.db)
            self._fd = _descriptor(path) if path else None
            if self._fd is None:
                self._seen = None
                return True
        try:
            header = os.pread(self._fd, HEADER_BYTES, 0)
        except OSError:
            self._fd = self._seen = None
            return True
        if len(header) < HEADER_BYTES or header != self._seen:
            self._seen = header
            return True
        return False

    def close(self) -> None:
        """Forget what was seen (the descriptor stays this process's: see the module's docstring)."""
        self._fd = self._seen = None
