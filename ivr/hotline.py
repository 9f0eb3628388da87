"""The per-process parts of a running hotline, built once by the app factory and shared by every request."""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from twilio.request_validator import RequestValidator

from ivr.config import Config
from ivr.db import Database
from ivr.events import EventRecorder
from ivr.jobs import JobWorker
from ivr.rules import RulesStore
from ivr.state import StateReader

_E164ISH = re.compile(r"^\+?[0-9]{4,20}$")


@dataclass
class Hotline:
    config: Config
    db: Database
    rules: RulesStore
    state: StateReader
    recorder: EventRecorder
    jobs: "JobWorker" = None
    validator: RequestValidator = None

    @classmethod
    def build(cls, config: Config) -> "Hotline":
        db = Database(config.db_url)
        hotline = cls(
            config=config,
            db=db,
            rules=RulesStore(config.rules_path),
            state=StateReader(db, config.instance_path / "last_good_snapshot.json"),
            recorder=EventRecorder(db, config.spool_dir, config.event_flush_interval),
        )
        hotline.jobs = JobWorker(hotline)
        hotline.validator = RequestValidator(config.twilio_auth_token)
        return hotline

    def close(self) -> None:
        """Stop background work, flush what was recorded, release database connections."""
        self.jobs.stop()
        self.recorder.close()
        self.db.dispose()

    def caller_identity(self, number: str | None) -> tuple[str | None, str | None]:
        """A keyed hash and a masked form of a caller's number: we keep no more than that."""
        if not number:
            return None, None
        cleaned = re.sub(r"[\s().-]", "", number)
        if not _E164ISH.match(cleaned):
            return None, "withheld" if "anonymous" in number.lower() else "unknown"
        digest = hmac.new(self._hash_key(), cleaned.lstrip("+").encode(), hashlib.sha256).hexdigest()
        return digest, "***" + cleaned[-4:]

    def _hash_key(self) -> bytes:
        return hmac.new(self.config.secret_key.encode(), b"caller-number", hashlib.sha256).digest()
