"""With the database down or read-only, every `ivr` command says so in one sentence, exits 1, changes
nothing, and never prints a traceback (one place: HotlineGroup in ivr/ops/cli/context.py)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from ivr.ops.cli import main
from ivr.store.db import normalize_url
from ivr.store.state import get_mode

DOWN = "postgresql://postgres@127.0.0.1:1/hotline"  # nothing listens on port 1: connection refused
SENTENCE = "The database is unavailable ("
WHAT_TO_DO = "check that it is running and writable and that DATABASE_URL points at it"


def read_only(url: str) -> str:
    """The same database, opened so that every write is refused by the database itself."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///file:{parsed.database}?mode=ro&uri=true"
    return parsed.update_query_dict({"options": "-c default_transaction_read_only=on"}).render_as_string(
        hide_password=False)


COMMANDS = [
    ("mode", "set", "live", "--reason", "agents on shift"),
    ("announce", "list"),
    ("incident", "create", "--title", "Card data theft", "--severity", "critical", "--reason", "disclosure"),
    ("users", "add", "ada", "--role", "admin"),
    ("agents", "deactivate", "alex", "--reason", "left"),
    ("callbacks", "done", "17", "--note", "called back"),
    ("affected", "check", "+12025550123"),
]


def _run(config, url, args):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


READS_AND_SETUP = [("mode", "show"), ("callbacks", "list", "--done"), ("incident", "list"), ("agents", "list"),
                   ("report", "--since", "7d"), ("setup", "--no-audio"), ("db", "upgrade"), ("rules", "reload"),
                   ("users", "token", "ada"), ("announce", "publish", "1"), ("announce", "export", "1", "--out",
                   "x.wav"), ("announce", "rollback", "--lang", "en"), ("jobs", "run"),
                   ("affected", "import", "list.csv")]


@pytest.mark.parametrize("args", COMMANDS + READS_AND_SETUP, ids=" ".join)
def test_a_database_that_is_down_is_one_sentence_and_exit_1(config, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.csv").write_text("phone\n+12025550123\n")
    result = _run(config, DOWN, args)
    assert result.exit_code == 1, result.output
    assert SENTENCE in result.output and WHAT_TO_DO in result.output and "Connection refused" in result.output
    assert "Traceback" not in result.output and "sqlalchemy" not in result.output.lower()


READ_ONLY = [("mode", "set", "message", "--reason", "end of shift"),  # from live: no go-live check first
             ("incident", "create", "--title", "Card data theft", "--severity", "critical", "--reason", "x"),
             ("users", "add", "ada", "--role", "admin")]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_database_is_the_same_sentence_and_nothing_changes(config, args):
    from ivr.store.db import Database
    from ivr.store.incidents import list_incidents
    from ivr.store.state import set_mode

    db = Database(config.db_url)
    try:
        set_mode(db, "live", reason="agents on shift", actor="test")
        before = list_incidents(db)
        result = _run(config, read_only(config.db_url), args)
        assert result.exit_code == 1, result.output
        assert SENTENCE in result.output and WHAT_TO_DO in result.output and "read" in result.output.lower()
        assert get_mode(db)[0] == "live" and list_incidents(db) == before
    finally:
        db.dispose()
