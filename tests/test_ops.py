"""What an operator runs on: the probes, the JSON logs, gunicorn's control socket, the settings file."""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys

from pathlib import Path

import pytest
import requests

from conftest import AUTH_TOKEN, IVR, PROJECT_ROOT
from helpers import json_log
from ivr.ops.health import DRAIN_FILE
from ivr.ops.logs import JsonFormatter
from ivr.tools.simulate import HttpTransport, SimulatedCall

DATABASE_AWAY = "postgresql://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1: refused at once


def test_readyz_needs_no_database_and_says_what_keeps_a_server_from_callers(app, config, tmp_path):
    from ivr.app import create_app

    client = app.test_client()
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").get_json() == {"status": "ready", "problems": []}
    (config.instance_path / DRAIN_FILE).touch()  # the operator drains this server before stopping it
    drained = client.get("/readyz")
    assert drained.status_code == 503 and drained.get_json()["problems"][0].startswith("draining")
    (config.instance_path / DRAIN_FILE).unlink()

    # The database is away: a server that has the snapshot another worker left is still ready; /healthz
    # reports the outage as "degraded".
    away = create_app(config.with_overrides(database_url=DATABASE_AWAY))
    try:
        assert away.test_client().get("/readyz").status_code == 200
        health = away.test_client().get("/healthz")
        assert health.status_code == 503 and health.get_json()["status"] == "degraded"
        assert health.get_json()["ready"] is True and "database unreachable" in health.get_json()["problems"][0]
    finally:
        away.extensions["ivr"].close()
    # A new server that never read the content cannot serve callers what they must hear.
    fresh = create_app(config.with_overrides(database_url=DATABASE_AWAY, instance_path=tmp_path / "new"))
    try:
        resp = fresh.test_client().get("/readyz")
        assert resp.status_code == 503 and "no snapshot" in resp.get_json()["problems"][0]
    finally:
        fresh.extensions["ivr"].close()


def test_a_json_log_line_keeps_its_traceback_and_request_fields_inside():
    try:
        raise ValueError("boom\non two lines")
    except ValueError:
        record = logging.LogRecord("webhooks.voice", logging.ERROR, __file__, 1, "step %s failed", ("menu",),
                                   sys.exc_info())
    record.call_sid, record.route = "CA" + "1" * 32, "/voice/menu"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "step menu failed" and entry["level"] == "error"
    assert entry["call_sid"] == "CA" + "1" * 32 and entry["route"] == "/voice/menu"
    assert "Traceback" in entry["traceback"] and "ValueError: boom\non two lines" in entry["traceback"]


def test_a_log_format_or_proxy_count_that_means_nothing_stops_the_server_with_a_clear_error():
    from ivr.config import ConfigError, finalize, from_env

    for env, says in (({"IVR_LOG_FORMAT": "xml"}, "text or json"), ({"IVR_TRUSTED_PROXIES": "-1"}, "0 or more")):
        with pytest.raises(ConfigError, match=says):
            finalize(from_env({"IVR_ENV": "development", **env}), serving=False)


def test_the_environment_file_example_lists_every_setting():
    example = (PROJECT_ROOT / "deploy" / "hotline.env.example").read_text()
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.M))
    read = set()
    for path in [PROJECT_ROOT / "ivr" / "config.py", *(PROJECT_ROOT / "ivr" / "ops").rglob("*.py")]:
        read |= set(re.findall(r"""(?:os\.environ|\benv)\.get\(\s*["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
    read -= {"PROMETHEUS_MULTIPROC_DIR"}  # set by `ivr serve` itself, per server
    assert read and read <= listed | {"IVR_INSTANCE_PATH", "IVR_MEDIA_CACHE"}, sorted(read - listed)
    assert "IVR_INSTANCE_PATH" in (PROJECT_ROOT / "deploy" / "systemd" / "ivr-hotline@.service").read_text()


def test_the_caller_pool_serves_only_what_twilio_calls_and_the_staff_pool_nothing_of_it(config):
    """The bulkhead starts in the app factory: the caller part has no console, API or /metrics to be held
    by, the staff part no voice webhooks (it plays announcements for the console)."""
    from ivr.app import create_app

    apps = {part: create_app(config, part=part) for part in ("callers", "staff")}
    try:
        routes = {part: {rule.rule for rule in app.url_map.iter_rules()} for part, app in apps.items()}
        assert "/voice/incoming" in routes["callers"] and "/media/<sha256>.wav" in routes["callers"]
        assert all(r.startswith(("/voice/", "/sms/", "/media/", "/livez", "/readyz", "/healthz", "/static/"))
                   for r in routes["callers"]), sorted(routes["callers"])
        assert {"/sms/status", "/sms/inbound"} <= routes["callers"]  # notices' reports and replies
        assert {"/console/", "/api/mode", "/metrics", "/media/<sha256>.wav", "/readyz"} <= routes["staff"]
        assert not any(r.startswith(("/voice/", "/sms/")) for r in routes["staff"])
        assert apps["callers"].test_client().get("/console/").status_code == 404
    finally:
        for app in apps.values():
            app.extensions["ivr"].close()


@pytest.mark.slow
def test_two_servers_on_one_host_each_have_their_control_socket_and_log_json(config, server, tmp_path):
    """Two `ivr serve` from two instance folders: each pool's gunicorn has its own control socket in its
    server's folder (gunicorn's default is one per user, which the second took from the first), with the
    pool's own timeouts; everything they write is JSON."""
    first = server(workers=1, IVR_INSTANCE_PATH=str(tmp_path / "one"), IVR_LOG_FORMAT="json")
    # Settings after `--` reach both pools' gunicorn and win over ivr's own.
    second = server(workers=1, gunicorn_args=["--max-requests", "5000"], IVR_INSTANCE_PATH=str(tmp_path / "two"),
                    IVR_LOG_FORMAT="json")

    def ask(socket_path, command="show stats") -> dict:
        out = subprocess.run([str(IVR.with_name("gunicornc")), "-s", str(socket_path), "-c", command, "-j"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)

    def parent_of(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

    def master_behind(socket_path) -> int:
        return ask(socket_path)["pid"]

    for srv, folder in ((first, tmp_path / "one"), (second, tmp_path / "two")):
        masters = {pool: master_behind(folder / f"gunicorn-{pool}.ctl") for pool in ("callers", "staff")}
        assert len(set(masters.values())) == 2 and {parent_of(pid) for pid in masters.values()} == {srv.proc.pid}
    callers, staff = (ask(tmp_path / "two" / f"gunicorn-{pool}.ctl", "show config") for pool in ("callers", "staff"))
    assert callers["timeout"] < 15 <= staff["timeout"]  # Twilio gives up at 15 s; an upload takes longer
    assert callers["max_requests"] == staff["max_requests"] == 5000 and callers["preload_app"]

    call = SimulatedCall(HttpTransport(first.url), AUTH_TOKEN, keys=["0"]).run()
    assert call.ended == "hangup"
    forged = requests.post(first.url + "/voice/incoming", data={"CallSid": call.call_sid},
                           headers={"X-Twilio-Signature": "forged", "X-Request-Id": "req-from-the-proxy"}, timeout=5)
    assert forged.status_code == 403 and forged.headers["X-Request-Id"] == "req-from-the-proxy"
    second.stop()  # stopping one server leaves the other's socket in place
    assert parent_of(master_behind(tmp_path / "one" / "gunicorn-callers.ctl")) == first.proc.pid

    entries = json_log(first.log_path) + json_log(second.log_path)
    assert {"serve", "master", "worker", "background"} <= {e["process"] for e in entries}
    access = [e for e in entries if e["logger"] == "gunicorn.access" and e.get("call_sid") == call.call_sid]
    assert {(e["route"], e["status"]) for e in access} >= {("/voice/incoming", 200), ("/voice/status", 200)}
    refused = [e for e in entries if e.get("request_id") == "req-from-the-proxy"]
    assert {e["logger"] for e in refused} == {"webhooks.voice", "gunicorn.access"}  # the warning and the line
    assert all(e["client"] == "127.0.0.1" and e["route"] == "/voice/incoming" for e in refused)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_is_one_systemd_accepts_without_a_word(tmp_path):
    """systemd only warns about a misplaced or misspelt setting, and then ignores it: no warning allowed."""
    unit = (PROJECT_ROOT / "deploy" / "systemd" / "ivr-hotline@.service").read_text()
    (tmp_path / "ivr-hotline@.service").write_text(unit.replace("/opt/ivr-hotline", str(PROJECT_ROOT)))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "ivr-hotline@8001.service")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
