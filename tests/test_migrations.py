"""The Alembic migrations build exactly the schema the models describe, and go down and up again."""
from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from ivr.store.db import Database
from ivr.store.migrate import alembic_config, current, upgrade


def test_migrations_match_the_models_and_round_trip(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    cfg = alembic_config(db.url)
    command.check(cfg)  # raises if the models and the migrated schema differ
    assert current(db) is not None
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT mode FROM hotline_state WHERE id = 1").scalar() == "message"
    command.downgrade(cfg, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(db)
    assert "uq_announcements_one_published" in {i["name"] for i in inspect(db.engine).get_indexes("announcements")}
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    db.dispose()


def test_concurrent_read_then_write_transactions_never_fail_with_database_locked(tmp_path):
    """Two processes' worth of writers (threads with their own connections) doing read-then-write."""
    import threading

    from sqlalchemy import select, update

    from ivr.store.models import HotlineState

    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db)
    errors: list[Exception] = []

    def writer():
        for _ in range(150):
            try:
                with db.write() as conn:
                    version = conn.execute(select(HotlineState.content_version)).scalar()
                    conn.execute(update(HotlineState).values(content_version=version + 1))
            except Exception as exc:  # "database is locked" would land here
                errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as conn:
        final = conn.execute(select(HotlineState.content_version)).scalar()
    db.dispose()
    assert errors == [] and final == 1 + 3 * 150  # no error and no lost update


def _schema_at(path, revision: str) -> str:
    """A database stamped at `revision`, with one table of its own to see that nothing is touched."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.executescript(f"""CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
                           INSERT INTO alembic_version VALUES ('{revision}');
                           CREATE TABLE hotline_state (id INTEGER PRIMARY KEY, mode VARCHAR(16));""")
    conn.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize("revision, says", [
    ("0005", "git checkout 111b234 && make install && ivr db upgrade"),  # a development build's, squashed
    ("f00d", "which this version does not know"),
])
def test_a_schema_at_a_revision_it_does_not_know_is_refused_and_left_alone(tmp_path, revision, says):
    from click.testing import CliRunner

    from ivr.ops.cli import main

    url = _schema_at(tmp_path / "old.db", revision)
    for command_line in (["db", "upgrade"], ["setup", "--no-audio"]):
        result = CliRunner().invoke(main, command_line,
                                    env={"DATABASE_URL": url, "IVR_INSTANCE_PATH": str(tmp_path)})
        assert result.exit_code == 1, result.output
        assert says in result.output and "nothing was changed" in result.output
    db = Database(url)
    assert current(db) == revision
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version", "hotline_state"}
    db.dispose()


def test_a_database_the_development_migrations_built_is_where_the_squashed_schema_ends():
    """The squashed schema kept the id of the development builds' last migration (0009_agents): a database
    they brought there needs only the steps after it. That both schemas are the same was checked when
    squashing, by comparing pg_dump --schema-only and SQLite's table, index and key lists."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert scripts.get_bases() == ["0009_agents"]
    assert scripts.get_revision("0009_agents").path.endswith("0009_schema.py")
