"""The hotline's state as every webhook sees it: the mode and the published content, read once per request.

Reading is one indexed SELECT of a one-row table. The content (active incident, published announcements)
is reloaded only when its version number changes. The last good snapshot is kept in memory and in a file,
so callers still hear the announcement when the database cannot be reached.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Connection, select, update

from ivr.audit import audit
from ivr.db import Database
from ivr.models import MODES, Announcement, HotlineState, Incident, utcnow

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 2.0  # after a failed read, serve the snapshot for this long before trying again


@dataclass(frozen=True)
class Spoken:
    """What a caller hears for one topic in one language: audio when there is some, else the text."""

    text: str | None
    media: str | None = None  # sha256 of phone-ready audio, served under /media/<sha256>.wav
    version: int = 0


@dataclass(frozen=True)
class Content:
    version: int = 0
    incident_id: int | None = None
    incident_title: str = ""
    severity: str = ""
    spoken: dict[str, Spoken] = field(default_factory=dict)  # key: "<lang>/<topic>"

    def find(self, lang: str, topic: str, fallback_lang: str) -> tuple[Spoken, str] | None:
        """The announcement on `topic` in the caller's language, else in the fallback language."""
        for code in (lang, fallback_lang):
            spoken = self.spoken.get(f"{code}/{topic}")
            if spoken and (spoken.text or spoken.media):
                return spoken, code
        return None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Content":
        spoken = {k: Spoken(**v) for k, v in (data.get("spoken") or {}).items()}
        return cls(**{**data, "spoken": spoken})


@dataclass(frozen=True)
class Snapshot:
    mode: str
    content: Content
    fresh: bool = True  # False: the database could not be read; this is the last good state


def load_content(conn: Connection, version: int) -> Content:
    """Read the active incident and its published announcements."""
    incident = conn.execute(
        select(Incident.id, Incident.title, Incident.severity)
        .where(Incident.status == "active").order_by(Incident.updated_at.desc()).limit(1)
    ).first()
    if incident is None:
        return Content(version=version)
    rows = conn.execute(
        select(Announcement.language, Announcement.topic, Announcement.text, Announcement.media_sha256,
               Announcement.version)
        .where(Announcement.incident_id == incident.id, Announcement.status == "published")
    ).all()
    spoken = {f"{r.language}/{r.topic}": Spoken(r.text, r.media_sha256, r.version) for r in rows}
    return Content(version, incident.id, incident.title, incident.severity, spoken)


class StateReader:
    """Per-process reader of the hotline state, with the last good snapshot as a safety net."""

    def __init__(self, db: Database, snapshot_file: Path):
        self.db = db
        self.snapshot_file = snapshot_file
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._retry_at = 0.0
        self._local = threading.local()
        self.mode_override: str | None = None  # `ivr simulate --all-paths` walks both modes in its own process

    def current(self) -> Snapshot:
        """The state for this request: fresh from the database, or the last good one if it cannot be read."""
        if self.mode_override:
            snap = self._current()
            return Snapshot(self.mode_override, snap.content, snap.fresh)
        return self._current()

    def _current(self) -> Snapshot:
        if time.monotonic() < self._retry_at:
            return self.last_good()
        try:
            snap = self._read()
        except Exception as exc:  # any database failure: the caller must still be served
            log.error("hotline state unreadable, serving the last good snapshot: %s", exc)
            self._retry_at = time.monotonic() + RETRY_AFTER_FAILURE_S
            return self.last_good()
        self._retry_at = 0.0
        return snap

    def _state_row(self):
        """One autocommit SELECT on this thread's own connection: a single round trip per webhook (a pooled
        connection would add the pool's reset-on-return ROLLBACK, and a transaction its BEGIN)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid() or self._local.db is not self.db:
            if conn is not None and self._local.pid == os.getpid():
                self.close()  # the database changed under us (tests do this): let the old connection go
            raw = self.db.engine.raw_connection()
            if not self.db.is_sqlite:
                raw.dbapi_connection.autocommit = True
            raw.detach()  # ours for good: never handed back to the pool, never reset by it
            conn, self._local.conn, self._local.pid, self._local.db = raw, raw, os.getpid(), self.db
        try:
            cur = conn.cursor()
            cur.execute("SELECT mode, content_version FROM hotline_state WHERE id = 1")
            row = cur.fetchone()
            cur.close()
            return row
        except Exception:
            self._local.conn = None  # a broken connection is replaced on the next request
            try:
                conn.close()
            except Exception:
                pass
            raise

    def close(self) -> None:
        """Close this thread's state connection."""
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _read(self) -> Snapshot:
        row = self._state_row()
        if row is None:
            raise RuntimeError("hotline_state has no row: run `ivr db upgrade`")
        mode, version = row
        last = self._last
        if last is not None and last.content.version == version:
            content = last.content
        else:
            with self.db.read() as conn:
                content = load_content(conn, version)
        snap = Snapshot(mode, content)
        if last is None or last.mode != mode or last.content is not content:
            self._keep(snap)
        return snap

    def _keep(self, snap: Snapshot) -> None:
        with self._lock:
            self._last = snap
            try:
                self.snapshot_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.snapshot_file.with_name(f".{self.snapshot_file.name}.{os.getpid()}")
                tmp.write_text(json.dumps({"mode": snap.mode, "content": snap.content.to_json()}))
                os.replace(tmp, self.snapshot_file)
            except OSError as exc:
                log.warning("could not write the last-good snapshot file: %s", exc)

    def last_good(self) -> Snapshot:
        """The last state read from the database: from memory, else from the file, else a safe default."""
        if self._last is not None:
            return Snapshot(self._last.mode, self._last.content, fresh=False)
        try:
            data = json.loads(self.snapshot_file.read_text())
            snap = Snapshot(data["mode"], Content.from_json(data["content"]), fresh=False)
        except (OSError, ValueError, KeyError, TypeError):
            return Snapshot("message", Content(), fresh=False)
        self._last = Snapshot(snap.mode, snap.content)
        return snap


def get_mode(db: Database) -> tuple[str, object, str]:
    """The current mode, when it was set and by whom."""
    with db.read() as conn:
        row = conn.execute(select(HotlineState.mode, HotlineState.updated_at, HotlineState.updated_by)
                           .where(HotlineState.id == 1)).one()
    return row.mode, row.updated_at, row.updated_by


def set_mode(db: Database, mode: str, *, reason: str, actor: str) -> tuple[str, str]:
    """Switch the whole hotline between message and live; audited. Returns (from, to)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not reason or not reason.strip():
        raise ValueError("a reason is required: the audit log must say why the mode changed")
    with db.write() as conn:
        current = conn.execute(select(HotlineState.mode).where(HotlineState.id == 1).with_for_update()).scalar_one()
        if current == mode:
            return current, mode
        conn.execute(update(HotlineState).where(HotlineState.id == 1)
                     .values(mode=mode, updated_at=utcnow(), updated_by=actor))
        audit(conn, actor=actor, action="mode.set", subject="hotline", from_value=current, to_value=mode,
              reason=reason.strip())
    return current, mode


def bump_content(conn: Connection) -> None:
    """Tell every worker that published content changed (they reload it on their next request)."""
    conn.execute(update(HotlineState).where(HotlineState.id == 1)
                 .values(content_version=HotlineState.content_version + 1))
