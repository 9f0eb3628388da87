"""The routing rules in force in this process: routing_rules.yaml, reloaded when it changes, the last good kept.

The last good rules are also kept on disk (`last_good_rules.yaml` in the instance folder), so that a worker
starting while the file is bad (one replaced after a crash, a timeout, a restart) takes the rules the other
workers keep in force instead of failing to boot: gunicorn's master stops the whole server when a worker
fails to boot (seen: a bad save, then one worker killed, and the server was gone).
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from ivr.core.rules import Rules, RulesInvalid, load, parse
from ivr.store.files import write_atomically

log = logging.getLogger("ivr.core.rules")  # the name operators' log filters know


class RulesStore:
    """The rules in force: reloaded when the file changes, the last good version kept when it is bad."""

    def __init__(self, path: Path | str, kept: Path | None = None):
        self.path = Path(path)
        self.kept = Path(kept) if kept else None  # where the last good rules are kept for the next worker
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self.last_error: RulesInvalid | None = None
        self.on_reload = None  # called with (error or None, the file's sha256) after each reload attempt
        try:
            self._rules = self._load()
        except RulesInvalid as exc:
            if self.kept is None or not self.kept.exists():
                raise  # nothing good to keep: a server does not start on a bad file
            self._rules = parse(self.kept.read_text(encoding="utf-8"), str(self.kept))
            self.last_error = exc
            log.error("routing rules file invalid, starting with the last good rules (%s): %s", self.kept, exc)
        self._stamp = self._file_stamp()

    def _load(self) -> Rules:
        """Load the file, and keep its text as the last good rules once they are valid."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return load(self.path)  # refused, saying why it cannot be read
        rules = parse(text, str(self.path))
        if self.kept is not None:
            try:
                if not self.kept.exists() or self.kept.read_text(encoding="utf-8") != text:
                    write_atomically(self.kept, text)
            except OSError as exc:  # a worker starting later then needs a valid file: say so, carry on
                log.warning("could not keep the last good rules in %s: %s", self.kept, exc)
        return rules

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
                rules = self._load()
            except RulesInvalid as exc:
                if self.last_error is None or str(exc) != str(self.last_error):
                    log.error("routing rules NOT reloaded from %s, keeping the last good rules: %s", self.path, exc)
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
