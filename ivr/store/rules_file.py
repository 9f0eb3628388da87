"""The routing rules in force in this process: routing_rules.yaml, reloaded when it changes, the last good kept."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ivr.core.rules import Rules, RulesInvalid, load

log = logging.getLogger("ivr.core.rules")  # the name operators' log filters know


class RulesStore:
    """The rules in force: reloaded when the file changes, the last good version kept when it is bad."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self.last_error: RulesInvalid | None = None
        self.on_reload = None  # called with (error or None, the file's sha256) after each reload attempt
        self._rules = load(self.path)  # a bad file at start-up is fatal: there is nothing good to keep
        self._stamp = self._file_stamp()

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @property
    def rules(self) -> Rules:
        """The current rules, after picking up a changed file (a stat call: cheap enough for every request)."""
        stamp = self._file_stamp()
        if stamp != self._stamp and stamp is not None:
            self.reload(stamp)
        return self._rules

    def reload(self, stamp: tuple | None = None) -> RulesInvalid | None:
        with self._lock:
            stamp = stamp or self._file_stamp()
            try:
                rules = load(self.path)
            except RulesInvalid as exc:
                if self.last_error is None or str(exc) != str(self.last_error):
                    log.error("routing rules NOT reloaded, keeping the last good rules: %s", exc)
                self.last_error = exc
                self._stamp = stamp
                self._notify(exc)
                return exc
            self._rules, self._stamp, self.last_error = rules, stamp, None
            log.info("routing rules reloaded from %s", self.path)
            self._notify(None)
            return None

    def _notify(self, error: RulesInvalid | None) -> None:
        if self.on_reload is None:
            return
        try:
            sha = hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            sha = "unreadable"
        try:
            self.on_reload(error, sha)
        except Exception:  # auditing must never cost a caller the rules
            log.exception("could not audit the rules reload")
