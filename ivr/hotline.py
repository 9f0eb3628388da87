"""The per-process parts of a running hotline, built once by the app factory and shared by every request."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from twilio.request_validator import RequestValidator

from ivr.config import Config
from ivr.core.identity import caller_identity
from ivr.spool.recorder import EventRecorder
from ivr.store import sealed
from ivr.store.db import Database
from ivr.store.rules_file import RulesStore
from ivr.store.state import StateReader
from ivr.worker.handlers import job_handlers
from ivr.worker.jobs import JobWorker


@dataclass
class Hotline:
    config: Config
    db: Database
    rules: RulesStore
    state: StateReader
    recorder: EventRecorder
    jobs: "JobWorker" = None
    validator: RequestValidator = None
    hold_tone: tuple[float, str] | None = None  # (seconds, sha256) of the music between hold messages

    @classmethod
    def build(cls, config: Config, background: bool = False) -> "Hotline":
        """The parts for a web worker, or (`background`) for `ivr background` and the CLI: they differ in how
        long a database statement or lock may keep them waiting (ivr/store/db.py)."""
        db = Database(config.db_url, config.db_timeouts(background))
        sealed.use(config.db_url, config.instance_path, config.data_keys)
        hotline = cls(
            config=config,
            db=db,
            rules=RulesStore(config.rules_path, kept=config.instance_path / "last_good_rules.yaml"),
            state=StateReader(db, config.instance_path / "last_good_snapshot.json"),
            recorder=EventRecorder(db, config.spool_dir, config.event_flush_interval, mode=config.event_writer,
                                   reserve_bytes=config.spool_reserve_bytes, memory_bytes=config.spool_memory_bytes),
        )
        hotline.jobs = JobWorker(hotline, job_handlers(), lease=timedelta(seconds=config.job_lease_seconds))
        hotline.rules.on_reload = hotline.audit_rules_reload
        hotline.validator = RequestValidator(config.twilio_auth_token)
        return hotline

    def close(self) -> None:
        """Stop background work, flush what was recorded, release database connections."""
        self.jobs.stop()
        self.recorder.close()
        self.state.close()
        self.db.dispose()

    def caller_identity(self, number: str | None) -> tuple[str | None, str | None]:
        return caller_identity(self.config.secret_key, number)

    def audit_rules_reload(self, error, sha: str) -> None:
        """Audit a reload of routing_rules.yaml once, however many workers noticed the change."""
        from sqlalchemy import select

        from ivr.store.audit import audit
        from ivr.store.models import AuditEntry

        action = "rules.reload" if error is None else "rules.reload_refused"
        subject = f"{self.rules.path.name} sha256 {sha[:16]}"
        with self.db.write() as conn:
            seen = conn.execute(select(AuditEntry.id).where(AuditEntry.action == action,
                                                            AuditEntry.subject == subject).limit(1)).first()
            if not seen:
                audit(conn, actor="hotline", action=action, subject=subject,
                      to_value="new rules in force" if error is None else f"kept the last good rules: {error}"[:2000],
                      reason="the file changed")

    def is_affected(self, number: str | None) -> bool:
        """Is this caller on the breach list? One primary-key lookup."""
        from ivr.store import affected

        return affected.is_affected(self.db, self.config.secret_key, number or "")
