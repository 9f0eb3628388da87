"""The real thing: `ivr setup` + `ivr serve` (what `make run` runs) under gunicorn, called over HTTP."""
from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy import func, select

from conftest import IVR, AUTH_TOKEN, Server, server_env
from helpers import wait_for
from ivr.store.db import Database
from ivr.store.models import Call, CallEvent
from ivr.tools.simulate import HttpTransport, SimulatedCall

pytestmark = pytest.mark.slow


def run_ivr(env, *args, check=True):
    proc = subprocess.run([str(IVR), *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_a_fresh_checkout_serves_a_working_hotline_with_no_credentials(tmp_path):
    """What `make run` does on a fresh machine: SQLite in the instance folder, a development token, a call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
    env.update(IVR_ENV="development", IVR_INSTANCE_PATH=str(tmp_path / "instance"),
               IVR_MEDIA_CACHE=str(tmp_path / "media"))
    out = run_ivr(env, "setup").stdout
    assert "default announcement published" in out and "development token" in out
    assert (tmp_path / "instance" / "hotline.db").exists()
    srv = Server(env)
    try:
        banner = srv.log_path.read_text()
        for path in ("/voice/incoming", "/voice/fallback", "/voice/status", "ivr simulate"):
            assert path in banner
        # As the banner says: from a second terminal (no IVR_ENV there), signing with the kept development token.
        second_terminal = {k: v for k, v in env.items() if k != "IVR_ENV"}
        sim = run_ivr(second_terminal, "simulate", "--url", srv.url, "--keys", "1,9", "--media")
        # The default announcement was spoken by the offline engine: main, details, main again, all served.
        plays = [line for line in sim.stdout.splitlines() if "hears audio: /media/" in line]
        assert len(plays) == 3 and all("HTTP 200, audio/wav" in p for p in plays)
        assert plays[0].split()[2] == plays[2].split()[2] != plays[1].split()[2]
        assert "call ended: hangup" in sim.stdout
        # The development token was made once and kept: a second setup reuses it.
        token = (tmp_path / "instance" / "dev_twilio_auth_token").read_text()
        run_ivr(env, "setup")
        assert (tmp_path / "instance" / "dev_twilio_auth_token").read_text() == token
    finally:
        srv.stop()


def test_production_refuses_to_start_without_a_twilio_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "DATABASE_URL"))}
    env.update(IVR_ENV="production", IVR_INSTANCE_PATH=str(tmp_path))
    proc = run_ivr(env, "serve", "--port", "1", check=False)
    assert proc.returncode != 0 and "TWILIO_AUTH_TOKEN" in proc.stderr


def test_calls_over_http_are_answered_and_recorded_and_mode_switches_reach_every_worker(config, server):
    srv = server(workers=2, IVR_METRICS_TOKEN="scrape-secret")
    env = server_env(config)

    def call(keys):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys).run()

    before = [call(["0"]) for _ in range(4)]
    assert all(r.ended == "hangup" for r in before)  # message mode: no queue, a polite end
    assert "set by" in run_ivr(env, "mode", "show").stdout
    out = run_ivr(env, "mode", "set", "live", "--reason", "agents on shift", "--by", "ops-lead",
                  "--override", "a test: the queue is enough").stdout
    assert "message -> live" in out
    # Several calls in a row land on both workers; every one of them sees the new mode.
    after = [call(["0"]) for _ in range(6)]
    assert all(r.ended == "queued" for r in after)

    db = Database(config.db_url)
    sids = [r.call_sid for r in before + after]

    def recorded():
        with db.read() as conn:
            calls = conn.execute(select(func.count()).select_from(Call).where(Call.call_sid.in_(sids))).scalar()
            queued = conn.execute(select(func.count()).select_from(CallEvent)
                                  .where(CallEvent.call_sid.in_(sids), CallEvent.kind == "route")).scalar()
        return calls == len(sids) and queued == len(sids)

    assert wait_for(recorded), "every call and its routing decision must be recorded"
    db.dispose()
    # PIN guessing on the admin line is counted in the database, whichever worker answers each call: the
    # fifth wrong PIN from one number locks it, and the right PIN is refused after that.
    add = subprocess.run([str(IVR), "users", "add", "dana", "--role", "admin", "--ask-pin"], env=env, text=True,
                         input="482916\n", capture_output=True, timeout=120)
    assert add.returncode == 0, add.stderr

    def admin_call(keys):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys, caller="+15555550666").run("/voice/admin")

    assert admin_call(["111111", "222222", "333333"]).said()[-1] == "That PIN is not right. Goodbye."
    locked = "This line cannot take a PIN right now. Please try again later. Goodbye."
    assert admin_call(["444444", "555555"]).said()[-1] == locked
    assert admin_call(["482916"]).said() == [locked]
    # Both workers' latency histograms are in /metrics (prometheus-client's multiprocess mode).
    import re

    import requests

    assert requests.get(srv.url + "/metrics", timeout=10).status_code == 401  # IVR_METRICS_TOKEN is set
    assert requests.get(srv.url + "/metrics", headers={"Authorization": "Bearer guess"}, timeout=10).status_code == 401
    metrics = requests.get(srv.url + "/metrics", headers={"Authorization": "Bearer scrape-secret"}, timeout=10).text
    count = re.search(r'ivr_webhook_seconds_count\{route="/incoming"\} ([0-9.]+)', metrics)
    assert count and float(count.group(1)) == len(sids)
    assert 'ivr_mode{mode="live"} 1.0' in metrics
    assert 'ivr_pin_locks_total{limit="caller",line="admin"} 1.0' in metrics  # counted by whichever worker


def test_cli_mode_set_requires_a_reason_and_validates_the_mode(config):
    env = server_env(config)
    assert run_ivr(env, "mode", "set", "live", check=False).returncode != 0
    bad = run_ivr(env, "mode", "set", "party", "--reason", "x", check=False)
    assert bad.returncode != 0 and "message" in bad.stderr
    blank = run_ivr(env, "mode", "set", "live", "--reason", "  ", check=False)
    assert blank.returncode != 0 and "reason" in blank.stderr
    assert run_ivr(env, "mode", "show").stdout.startswith("message")
