"""Schema migrations (Alembic), run from the CLI, `make run`, deploys and tests."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from ivr.store.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction that holds the write lock."""
    cfg = alembic_config(db.url)
    with db.writer.connect() as conn:
        if not db.is_sqlite:
            # Two app servers deploying at once must not both run the same migration.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74820101)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def current(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
