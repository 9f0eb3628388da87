"""Schema migrations (Alembic), run from the CLI, `make run`, deploys and tests."""
from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from ivr.core.errors import Refused
from ivr.store.db import Database
from ivr.store.sealed import truncate_wal

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Development builds' migrations, squashed into 0009_schema.py before 0.1.0; the last commit that has them.
SQUASHED = ("0001", "0002", "0003", "0004", "0005", "0006", "0007_security")
SQUASHED_IN = "111b234"


def alembic_config(url: str) -> AlembicConfig:
    # Alembic's default stdout is sys.stdout as it was when alembic was imported: a stream that may be
    # closed since (one pytest session after another in one process, as `make mutate` runs them).
    cfg = AlembicConfig(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction that holds the write lock."""
    cfg = alembic_config(db.url)
    with db.writer.connect() as conn:
        if not db.is_sqlite:
            # Two app servers deploying at once must not both run the same migration: the second waits for
            # the first however long it takes. A migration may rewrite a large table, so no statement
            # timeout; its lock waits keep the connection's lock_timeout, so it never queues every
            # caller's read behind a long transaction.
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(74820101)")
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(db.timeouts.lock_ms)}")
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        cfg.attributes["connection"] = conn
        _refuse_unknown(cfg, conn)
        command.upgrade(cfg, revision)
        conn.commit()
    truncate_wal(db.engine)  # a migration may have rewritten numbers stored in clear: no old frame stays


def current(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _refuse_unknown(cfg: AlembicConfig, conn) -> None:
    """A schema at a revision these migrations do not know is left as it is, with the way forward."""
    at = MigrationContext.configure(conn).get_current_revision()
    if at is None:
        return
    try:
        ScriptDirectory.from_config(cfg).get_revision(at)
        return
    except CommandError:
        pass
    if at in SQUASHED:
        raise Refused(f"the database's schema is at revision {at}, from a development build before 0.1.0; "
                      f"bring it to 0009_agents with that build's migrations first (git checkout {SQUASHED_IN} "
                      f"&& make install && ivr db upgrade), then run this version")
    raise Refused(f"the database's schema is at revision {at}, which this version does not know (a newer "
                  f"version of ivr, or another application's migrations in the same database)")
