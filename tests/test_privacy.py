"""Caller numbers at rest (issue 23 item 1): every byte of the database files, WAL included, is searched for a
caller's and an agent's number while a callback is owed, an SMS waits and an agent exists, and after each is
over: never found. The key file is 0600; `ivr keys rotate` re-encrypts; a missing or wrong key stops only the
features that need a number, while callers are still answered."""
from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from conftest import AUTH_TOKEN
from helpers import file_bytes, twilio_params, wait_for
from ivr.core.phone_numbers import callable_number
from ivr.ops.cli import main
from ivr.store import agents, queues, sealed
from ivr.store.db import Database
from ivr.store.models import AuditEntry, Callback, Job
from ivr.tools.simulate import HttpTransport, SimulatedCall
from stubs import StubHost

ACCOUNT = "AC" + "e" * 32
PIN = "2468"
HOTLINE = "+15555550100"


def a_number() -> str:
    """A fresh US number for each test, so a hit can only be this test's; one the hotline could call back
    (a number that cannot be called gets no callback or text: ivr/core/phone_numbers.py)."""
    while True:
        number = "+1202" + "".join(secrets.choice("0123456789") for _ in range(7))
        if callable_number(number) == number:
            return number


def encodings(number: str) -> list[bytes]:
    """The ways a number could sit in a file: E.164, its digits, the national digits, formatted; UTF-16 too."""
    digits = number.lstrip("+")
    national = digits[1:]
    forms = [number, digits, national, f"({national[:3]}) {national[3:6]}-{national[6:]}"]
    return [f.encode() for f in forms] + [f.encode("utf-16-le") for f in (number, national)]


READ = text("SELECT pg_read_binary_file(:p, 0, 268435456, true)")  # missing_ok: a relation without a file yet


def database_files(db_url: str, since: float) -> dict[str, bytes]:
    """Every byte the database keeps on disk. SQLite: the file, its -wal and -shm. PostgreSQL (as superuser,
    after CHECKPOINT so what was written is in the files): every table, index and TOAST file of this
    database, and the WAL segments written since `since`."""
    url = make_url(Database(db_url).url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        return {p.name: file_bytes(p) for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()}
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
            files = {}
            for name, path in conn.execute(text(
                    "SELECT c.oid::regclass::text, pg_relation_filepath(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 't', 'i') "
                    "AND n.nspname IN ('public', 'pg_toast') AND pg_relation_filepath(c.oid) IS NOT NULL")):
                files[name] = conn.execute(READ, {"p": path}).scalar() or b""
            for (segment,) in conn.execute(text("SELECT name FROM pg_ls_waldir() WHERE modification >= :t"),
                                           {"t": datetime.fromtimestamp(since - 2, timezone.utc)}):
                files[f"pg_wal/{segment}"] = conn.execute(READ, {"p": f"pg_wal/{segment}"}).scalar() or b""
    finally:
        engine.dispose()
    return files


def holders(db_url: str, since: float, *numbers: str) -> list[str]:
    """Which database files hold any encoding of these numbers."""
    forms = [form for number in numbers for form in encodings(number)]
    return sorted({name for name, data in database_files(db_url, since).items() if any(f in data for f in forms)})


def spool_holders(folder: Path, number: str) -> list[str]:
    """Which files of the spool folder (the webhooks' records on their way to the database) hold the number."""
    forms = encodings(number)
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms))


@pytest.fixture
def ivr(config):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key}

    def run(*args, ok=True, **extra):
        result = CliRunner().invoke(main, list(args), env={**env, **extra}, catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result

    tts_log = logging.getLogger("ivr.media.tts")
    level = tts_log.level
    yield run
    tts_log.setLevel(level)  # `ivr setup` quiets TTS warnings for the rest of its process: this one is pytest's


# -- the search itself, and SQLite's part -------------------------------------------------------------------
def test_the_search_sees_a_number_in_clear_and_sqlite_leaves_no_trace_of_one_removed(config):
    """The check can fail: a number written in clear is found. On SQLite, once the row is deleted (freed pages
    zeroed by secure_delete) and the WAL truncated, it is gone from every file."""
    number, since = a_number(), time.time()
    db = Database(config.db_url)
    try:
        with db.write() as conn:
            conn.execute(AuditEntry.__table__.insert().values(actor="test", action="test.clear", subject="x",
                                                              to_value=f"written in clear: {number}"))
        assert holders(config.db_url, since, number)
        with db.write() as conn:
            conn.execute(AuditEntry.__table__.delete().where(AuditEntry.action == "test.clear"))
            sealed.after_removal(conn)
        if db.is_sqlite:
            assert holders(config.db_url, since, number) == []
    finally:
        db.dispose()


# -- through ivr serve ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_no_database_file_ever_holds_a_callers_or_an_agents_number(config, server):
    """An agent's lifetime, a callback from booking to its dial, and key 4's text from pending to sent,
    through gunicorn and the `ivr background` it starts, against a stand-in for Twilio's Messages API."""
    caller, agent_phone, since = a_number(), a_number(), time.time()
    messages = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    twilio = StubHost({messages: (500, {"Content-Type": "application/json"}, b'{"status": 500, "code": 20500}')})
    db = Database(config.db_url)
    try:
        agents.add_agent(db, config.secret_key, "alex", agent_phone, PIN, actor="test")
        srv = server(workers=1, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_SMS_FROM=HOTLINE, IVR_HOTLINE_NUMBER=HOTLINE,
                     IVR_NOTICE_URL="https://example.com/notice", IVR_TWILIO_API_URL=twilio.origin)
        web = HttpTransport(srv.url)
        booked = SimulatedCall(web, AUTH_TOKEN, keys=["0", "1"], caller=caller).run("/voice/incoming")
        assert booked.said()[-1].startswith("Thank you. We will call you back")
        texted = SimulatedCall(web, AUTH_TOKEN, keys=["4", "9"], caller=caller, max_requests=6).run("/voice/incoming")
        assert any(s.startswith("We will send this information") for s in texted.said())
        # Twilio failed: the job waits to try again, its number sealed.
        wait_for(lambda: twilio.requests and _job(db)[0] == "pending", timeout=30)
        assert holders(config.db_url, since, caller, agent_phone) == []  # owed, pending, an agent: all sealed
        # The callback and the SMS job were spooled with the number sealed by the webhook.
        assert spool_holders(config.instance_path / "spool", caller) == []

        twilio.routes[messages] = (201, {"Content-Type": "application/json"},
                                   json.dumps({"sid": "SM" + "3" * 32, "status": "queued"}).encode())
        wait_for(lambda: _job(db)[0] == "done", timeout=30)
        sent = [b for b in twilio.bodies if b"SM" not in b]
        assert any(caller.replace("+", "%2B").encode() in body for body in sent)  # it did reach Twilio
        dialled = SimulatedCall(web, AUTH_TOKEN, keys=[PIN, "1"], caller=agent_phone, to=HOTLINE,
                                max_requests=5).run("/voice/agent")
        assert dialled.dialled == [(caller, HOTLINE)]  # opened for the dial, and only there
        wait_for(lambda: _callback_status(db) == "done", timeout=10)
        agents.deactivate_agent(db, "alex", actor="test", reason="left the team")
        assert holders(config.db_url, since, caller, agent_phone) == []  # sent, closed, removed
    finally:
        db.dispose()
        twilio.close()


def _job(db):
    with db.read() as conn:
        return conn.execute(select(Job.status, Job.payload, Job.last_error)).first() or (None, None, None)


def _callback_status(db):
    with db.read() as conn:
        return conn.execute(select(Callback.status)).scalar()


@pytest.mark.slow
def test_without_a_usable_key_callers_are_answered_and_only_number_features_wait_with_the_reason(config, server):
    """IVR_DATA_KEY that is not a key: the caller still gets TwiML, /healthz says why, the owed callback is
    not dialled (and stays owed), and key 4's text is kept as a failed job with the reason, never in clear."""
    caller, agent_phone = a_number(), a_number()
    db = Database(config.db_url)
    try:
        agents.add_agent(db, config.secret_key, "alex", agent_phone, PIN, actor="test")
        queues.request_callback(db, call_sid="CA" + "7" * 32, number=caller, language="en", queue="general",
                                priority=10, reason="callback offered")
        srv = server(workers=1, IVR_DATA_KEY="not-a-key", TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_SMS_FROM=HOTLINE,
                     IVR_TWILIO_API_URL="http://127.0.0.1:9")
        web = HttpTransport(srv.url)
        status, _type, body = web.post(f"{srv.url}/voice/incoming", *_signed(srv.url, "/voice/incoming"))
        assert status == 200 and b"<Response>" in body and (b"<Say" in body or b"<Play" in body)
        health = web.session.get(f"{srv.url}/healthz", timeout=15).json()
        assert any(p.startswith("data key: no usable data key") for p in health["problems"])

        agent = SimulatedCall(web, AUTH_TOKEN, keys=[PIN, "1"], caller=agent_phone, to=HOTLINE,
                              max_requests=4).run("/voice/agent")
        assert agent.dialled == [] and any("cannot be dialled now" in s for s in agent.said())
        assert _callback_status(db) == "waiting"

        stranger = a_number()
        asked = SimulatedCall(web, AUTH_TOKEN, keys=["0", "1"], caller=stranger, max_requests=4).run("/voice/incoming")
        assert asked.said() and not any("We will call you back" in s for s in asked.said())  # not promised
        assert spool_holders(config.instance_path / "spool", stranger) == []  # nor spooled in clear
        with db.read() as conn:  # only the callback owed before: nothing was stored in clear
            assert len(conn.execute(select(Callback.id)).all()) == 1
        texted = SimulatedCall(web, AUTH_TOKEN, keys=["4", "9"], caller=caller, max_requests=6).run("/voice/incoming")
        assert texted.said()
        wait_for(lambda: _job(db)[0] == "failed", timeout=30)
        _status, payload, error = _job(db)
        assert "no usable data key" in error and caller not in payload and caller[-4:] in payload
    finally:
        db.dispose()


def _signed(base: str, path: str):
    from twilio.request_validator import RequestValidator

    params = twilio_params("CA" + "8" * 32, From=a_number())
    return params, {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(base + path, params)}


# -- the key file, rotation, the migration ------------------------------------------------------------------
def test_ivr_setup_makes_a_key_file_only_its_owner_can_read_and_status_reports_it(config, ivr, tmp_path):
    fresh = tmp_path / "fresh"
    made = ivr("setup", "--no-audio", IVR_INSTANCE_PATH=str(fresh))
    key = fresh / "data.key"
    assert "data key made" in made.output and stat.S_IMODE(key.stat().st_mode) == 0o600
    status = ivr("keys", "status", IVR_INSTANCE_PATH=str(fresh))
    assert f"keys from: {key} (mode 0600)" in status.output and "keys held: 1" in status.output
    assert "data key made" not in ivr("setup", "--no-audio", IVR_INSTANCE_PATH=str(fresh)).output  # kept
    os.chmod(key, 0o644)
    assert "must be 0600" in ivr("keys", "status", ok=False, IVR_INSTANCE_PATH=str(fresh)).output


def test_rotation_re_encrypts_every_number_under_a_new_key_and_drops_the_old_one(config, hotline, ivr):
    caller, agent_phone = a_number(), a_number()
    db = hotline.db
    agents.add_agent(db, config.secret_key, "alex", agent_phone, PIN, actor="test")
    queues.request_callback(db, call_sid="CA" + "5" * 32, number=caller, language="en", queue="general",
                            priority=10, reason="callback offered")
    old_key = sealed.key_file(config.instance_path).read_text().split()[-1]
    before = _stored(db)

    out = ivr("keys", "rotate", "--reason", "yearly rotation", "--by", "otto").output
    assert "2 stored numbers re-encrypted" in out and "old keys dropped" in out
    keys = [k for k in sealed.key_file(config.instance_path).read_text().splitlines() if not k.startswith("#")]
    assert len(keys) == 1 and keys[0] != old_key
    after = _stored(db)
    assert after != before and all(sealed.is_sealed(v) for v in after)
    assert sorted(Fernet(keys[0]).decrypt(v.encode()).decode() for v in after) == sorted([caller, agent_phone])
    with db.read() as conn:
        actor, reason = conn.execute(select(AuditEntry.actor, AuditEntry.reason)
                                     .where(AuditEntry.action == "data_key.rotate")).one()
    assert (actor, reason) == ("otto", "yearly rotation")
    assert "2 under the newest key, 0 under an older key" in ivr("keys", "status").output


def _stored(db) -> list[str]:
    from ivr.store.models import Agent

    with db.read() as conn:
        return [conn.execute(select(Callback.number)).scalar(), conn.execute(select(Agent.phone)).scalar()]


def test_a_stored_number_under_another_key_is_refused_clearly(config, hotline):
    caller = a_number()
    queues.request_callback(hotline.db, call_sid="CA" + "6" * 32, number=caller, language="en", queue="general",
                            priority=10, reason="callback offered")
    stored = _stored(hotline.db)[0]
    assert caller not in stored and sealed.open_number(hotline.db, stored) == caller
    other = sealed.Keyring.from_keys([Fernet.generate_key().decode()], "IVR_DATA_KEY")
    with pytest.raises(sealed.DataKeyError, match="sealed under a data key this server does not hold"):
        other.open(stored)


def test_the_migration_seals_numbers_stored_in_clear(tmp_path, monkeypatch):
    from ivr.store.migrate import upgrade

    caller, agent_phone = a_number(), a_number()
    monkeypatch.setenv("IVR_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("IVR_DATA_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    upgrade(db, "0012_verification")  # the revision before the sealing one
    with db.write() as conn:
        conn.execute(text("INSERT INTO callbacks (call_sid, number, number_masked, language, queue, priority, reason,"
                          " requested_at, status, attempts) VALUES ('CA1', :n, '***', 'en', 'general', 10, '',"
                          " CURRENT_TIMESTAMP, 'waiting', 0)"), {"n": caller})
        conn.execute(text("INSERT INTO agents (name, phone_hash, phone_masked, pin_hash, active, created_at, phone,"
                          " queues, status) VALUES ('alex', 'h', '***', 'p', 1, CURRENT_TIMESTAMP, :p, '',"
                          " 'signed_out')"), {"p": agent_phone})
        conn.execute(text("INSERT INTO jobs (kind, payload, status, attempts, run_after, created_at, updated_at) "
                          "VALUES ('sms', :j, 'pending', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP,"
                          " CURRENT_TIMESTAMP)"), {"j": json.dumps({"to": caller, "reference": "HL-1"})})
    upgrade(db)
    key = tmp_path / "instance" / "data.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    sealed.use(url, tmp_path / "instance")
    with db.read() as conn:
        number, phone = _stored(db)
        payload = json.loads(conn.execute(select(Job.payload)).scalar())
    assert [sealed.open_number(db, v) for v in (number, phone, payload["to"])] == [caller, agent_phone, caller]
    db.dispose()
    assert holders(url, 0, caller, agent_phone) == []  # the clear values went with secure_delete and the WAL


def test_a_text_whose_number_was_sealed_under_a_lost_key_waits_with_the_reason(config, hotline):
    """The key file replaced (a lost key): the job is not run, not counted, and says why."""
    db = hotline.db
    with db.write() as conn:
        from ivr.store import jobs

        jobs.enqueue(conn, "sms", sealed.seal_payload(db, {"to": a_number(), "lang": "en", "reference": "HL-1"}))
    sealed.write_key_file(sealed.key_file(config.instance_path), [Fernet.generate_key().decode()])
    assert hotline.jobs.run_one()
    status, payload, error = _job(db)
    with db.read() as conn:
        attempts = conn.execute(select(Job.attempts)).scalar()
    assert (status, attempts) == ("pending", 0) and error.startswith("waiting for the data key: a stored number")
    assert sealed.is_sealed(json.loads(payload)["to"])  # kept for when the key is back


def test_rotation_with_ivr_data_key_re_encrypts_under_its_first_key(config, ivr):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    caller = a_number()
    db = Database(config.db_url)
    sealed.use(config.db_url, config.instance_path, old)
    queues.request_callback(db, call_sid="CA" + "4" * 32, number=caller, language="en", queue="general",
                            priority=10, reason="callback offered")
    refused = ivr("keys", "rotate", ok=False, IVR_DATA_KEY=old).output
    assert "put a new key first in IVR_DATA_KEY on every server" in refused
    out = ivr("keys", "rotate", IVR_DATA_KEY=f"{new},{old}").output
    assert "1 stored numbers re-encrypted" in out and "remove the older keys from IVR_DATA_KEY" in out
    assert Fernet(new).decrypt(_stored(db)[0].encode()).decode() == caller
    db.dispose()


def test_a_callback_is_found_by_the_callers_keyed_hash_since_its_token_never_repeats(hotline, place_call):
    caller = a_number()
    place_call(["0", "1"], caller=caller)
    owed = queues.open_callback_for(hotline.db, hotline.caller_identity(caller)[0])
    assert sealed.open_number(hotline.db, owed["number"]) == caller and owed["number_masked"] == "***" + caller[-4:]
    assert queues.open_callback_for(hotline.db, hotline.caller_identity(a_number())[0]) is None
    assert sealed.seal(hotline.db, caller) != sealed.seal(hotline.db, caller)  # equality on tokens finds nothing


def test_a_text_kept_masked_for_want_of_a_key_is_not_retried(config, hotline, ivr):
    """A text spooled while no data key could seal its number was stored failed with the number masked:
    a retry could only text "***1234", so `ivr jobs retry` refuses it and says why."""
    from ivr.store import jobs

    sealed.use(config.db_url, config.instance_path, "not-a-key")
    try:
        kept = sealed.stored_job(hotline.db, {"to": a_number(), "reference": "HL-7Q2", "lang": "en"})
    finally:
        sealed.use(config.db_url, config.instance_path, config.data_keys)
    assert kept["status"] == jobs.DEAD
    with hotline.db.write() as conn:
        jobs.enqueue(conn, "sms", kept["payload"])
        conn.execute(Job.__table__.update().values(status=kept["status"], last_error=kept["last_error"]))
        job_id = conn.execute(select(Job.id)).scalar()
    refused = ivr("jobs", "retry", str(job_id), "--reason", "the key is back", ok=False).output
    assert "stored with the number masked" in refused and "cannot run again" in refused
    with hotline.db.read() as conn:
        assert conn.execute(select(Job.status)).scalar() == jobs.DEAD


def test_retention_masks_a_dead_letters_sealed_number_by_the_numbers_own_last_digits(hotline):
    from datetime import timedelta

    from ivr.store import jobs
    from ivr.store.models import utcnow
    from ivr.worker import retention

    caller, old = a_number(), utcnow() - timedelta(days=hotline.config.callback_retention_days + 1)
    with hotline.db.write() as conn:
        jobs.enqueue(conn, "sms", sealed.seal_payload(hotline.db, {"to": caller, "reference": "HL-7Q2", "lang": "en"}))
        conn.execute(Job.__table__.update().values(status=jobs.DEAD, updated_at=old))
        job_id = conn.execute(select(Job.id)).scalar()
    assert retention.run_once(hotline)["dead_letters_scrubbed"] == 1
    assert jobs.payload_of(hotline.db, job_id)["to"] == "***" + caller[-4:]  # not the token's last characters
