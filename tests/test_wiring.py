"""How the parts are wired: every job the hotline enqueues has a handler in every process that works jobs,
the pure core loads nothing of the web or the database, and key 4's text really leaves under `ivr serve`."""
from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from urllib.parse import parse_qs

import pytest
from sqlalchemy import inspect, select, text

import ivr.core
from conftest import AUTH_TOKEN, IVR, PROJECT_ROOT, server_env
from helpers import wait_for
from ivr.store import jobs
from ivr.store.db import Database
from ivr.store.models import Job
from ivr.tools.simulate import HttpTransport, SimulatedCall
from ivr.worker.handlers import job_handlers
from stubs import StubHost, basic_auth

ACCOUNT = "AC" + "d" * 32
CALLER = "+12025550123"  # a number that can receive a text (phonenumbers calls it valid)
FORBIDDEN = ("flask", "sqlalchemy", "twilio", "werkzeug", "psycopg")


def test_every_kind_of_job_the_hotline_enqueues_has_a_handler():
    assert set(job_handlers()) == set(jobs.KINDS)


@pytest.mark.slow
def test_the_web_workers_and_the_job_commands_work_the_same_kinds(app, config):
    in_app = set(app.extensions["ivr"].jobs.handlers)
    env = server_env(config)
    listed = subprocess.run([str(IVR), "jobs", "kinds"], env=env, capture_output=True, text=True, timeout=60,
                            check=True).stdout.split()
    assert in_app == set(listed) == set(jobs.KINDS)


def test_a_job_of_a_kind_nobody_handles_fails_and_keeps_no_phone_number(hotline):
    with hotline.db.write() as conn:
        jobs.enqueue(conn, "retired_kind", {"to": CALLER, "reference": "HL-1"})
    assert hotline.jobs.run_one()
    with hotline.db.read() as conn:
        status, error, payload = conn.execute(select(Job.status, Job.last_error, Job.payload)).one()
    assert status == "failed" and "no handler" in error
    assert CALLER not in payload and json.loads(payload) == {"reference": "HL-1"}


def test_the_core_imports_nothing_of_the_web_or_the_database():
    modules = [f"ivr.core.{m.name}" for m in pkgutil.iter_modules(ivr.core.__path__)]
    assert {"ivr.core.flow", "ivr.core.verbs", "ivr.core.routing", "ivr.core.rules"} <= set(modules)
    probe = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
             f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({FORBIDDEN!r})))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         cwd=PROJECT_ROOT, check=True).stdout.strip()
    assert out == "[]", f"ivr.core loaded {out}"


@pytest.mark.slow
def test_key_4_texts_the_caller_under_ivr_serve_and_keeps_no_number(config, server):
    """Real gunicorn, the real `ivr background` it starts, the test's database, a stand-in for Twilio's REST API."""
    messages = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    sent = json.dumps({"sid": "SM" + "2" * 32, "status": "queued", "to": CALLER}).encode()
    twilio = StubHost({messages: (201, {"Content-Type": "application/json"}, sent)})
    try:
        srv = server(TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_SMS_FROM="+15555550100",
                     IVR_NOTICE_URL="https://example.com/notice", IVR_TWILIO_API_URL=twilio.origin)
        result = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["4", "9"], caller=CALLER,
                               max_requests=6).run("/voice/incoming")
        said = next(s for s in result.said() if s.startswith("We will send this information"))
        reference = said.rsplit(" ", 1)[-1].rstrip(".")
        wait_for(lambda: twilio.requests, timeout=20)
        (method, path, auth), = twilio.requests
        assert (method, path, auth) == ("POST", messages, basic_auth(ACCOUNT, AUTH_TOKEN))
        form = parse_qs(twilio.bodies[0].decode())
        assert form["To"] == [CALLER] and form["From"] == ["+15555550100"]
        assert reference in form["Body"][0] and "https://example.com/notice" in form["Body"][0]
        db = Database(config.db_url)
        try:
            wait_for(lambda: _job_status(db) == "done", timeout=10)
            assert _tables_holding(db, CALLER.lstrip("+")) == []
        finally:
            db.dispose()
    finally:
        twilio.close()


def _job_status(db: Database) -> str | None:
    with db.read() as conn:
        return conn.execute(select(Job.status)).scalar()


def _tables_holding(db: Database, digits: str) -> list[str]:
    """Every table with a text cell containing these digits (the full number, with or without its +)."""
    found = []
    with db.read() as conn:
        for table in inspect(conn).get_table_names():
            for column in inspect(conn).get_columns(table):
                if "CHAR" in str(column["type"]).upper() or "TEXT" in str(column["type"]).upper():
                    hit = conn.execute(text(f'SELECT 1 FROM "{table}" WHERE "{column["name"]}" LIKE :d LIMIT 1'),
                                       {"d": f"%{digits}%"}).first()
                    if hit:
                        found.append(f"{table}.{column['name']}")
    return found
