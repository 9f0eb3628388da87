"""Strangers cannot close the staff doors: the PIN lines slow down under attack instead of shutting,
`ivr pins unlock` lifts a lock, and an attack on a line or an account shows on the dashboard and /metrics;
all of it once more through `ivr serve` (voice on the caller pool, console on the staff pool)."""
from __future__ import annotations

import re
import subprocess

import pytest
import requests

from conftest import AUTH_TOKEN, IVR, server_env
from helpers import console_sign_in
from ivr.core.staff_call import PIN_LOCKED
from ivr.ops.console.auth import record_failure
from ivr.store import users
from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall
from test_cli import ivr  # noqa: F401 (the CLI fixture)

PIN, OWN, PASSWORD = "482916", "+15555559876", "correct horse battery staple"
WRONG = ["111111", "222222", "333333"]


def call(transport, keys, caller):
    return SimulatedCall(transport, AUTH_TOKEN, keys=keys, caller=caller).run("/voice/admin")


def logged_in(result) -> bool:
    return any(s.startswith("To record in") for s in result.said())


def attack_line(transport, callers: int = 17) -> None:
    """Three wrong PINs from each of `callers` spoofed caller IDs: 51 with 17, past the line-wide 50."""
    for n in range(callers):
        call(transport, WRONG, f"+1555551{n:04d}")


def plain(http: requests.Session) -> None:
    for cookie in http.cookies:
        cookie.secure = False  # the console's Secure cookie, sent over the test's plain HTTP


def add_dana(db, secret_key) -> None:
    users.add_user(db, "dana", "admin", actor="test", phone_pin=PIN, password=PASSWORD)
    users.set_phone(db, secret_key, "dana", OWN, actor="test")


def test_ivr_pins_unlock_lets_a_locked_caller_id_try_again(app, config, hotline, ivr):  # noqa: F811
    add_dana(hotline.db, config.secret_key)
    transport = FlaskTransport(app)
    call(transport, WRONG, OWN)  # her own fingers, or a spoofer with her number: five wrong PINs lock it
    assert call(transport, WRONG, OWN).said()[-1] == PIN_LOCKED
    assert call(transport, [PIN], OWN).said() == [PIN_LOCKED]
    assert "reason" in ivr("pins", "unlock", "--line", "admin", "--phone", OWN, ok=False).output
    assert "not a phone number" in ivr("pins", "unlock", "--line", "admin", "--phone", "x", "--reason", "r",
                                       ok=False).output
    out = ivr("pins", "unlock", "--line", "admin", "--phone", OWN, "--reason", "dana called the desk").output
    assert "admin line: 1 PIN lock(s) lifted for ***9876" in out
    assert logged_in(call(transport, [PIN], OWN))
    assert "0 PIN lock(s) lifted for every caller ID" in ivr("pins", "unlock", "--line", "agent", "--reason",
                                                             "after the attack").output


def under_attack_value(metrics: str, target: str) -> float:
    found = re.search(rf'^ivr_under_attack\{{target="{target}"\}} (\S+)$', metrics, re.M)
    return float(found.group(1)) if found else -1.0


def test_an_attack_on_a_line_or_an_account_shows_on_the_dashboard_and_metrics(app, config, hotline):
    add_dana(hotline.db, config.secret_key)
    console = app.test_client()
    assert console_sign_in(console, "dana", PASSWORD).status_code == 303
    page = console.get("/console/").get_data(as_text=True)
    assert 'id="under-attack"' not in page
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert under_attack_value(metrics, "admin line") == 0 and under_attack_value(metrics, "console accounts") == 0
    attack_line(FlaskTransport(app))
    for n in range(20):
        record_failure(hotline.db, "Dana", f"203.0.113.{n}")
        record_failure(hotline.db, "nobody-here", f"203.0.113.{n}")  # a made-up name is no account
    page = console.get("/console/").get_data(as_text=True)
    banner = page[page.index('id="under-attack"'):]
    assert "admin phone line is taking many wrong PINs" in banner and "guesses at &#39;dana&#39;" in banner
    assert "nobody-here" not in page
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert under_attack_value(metrics, "admin line") == 1 and under_attack_value(metrics, "console accounts") == 1
    assert under_attack_value(metrics, "agent line") == 0


@pytest.mark.slow
def test_through_ivr_serve_strangers_cannot_close_the_staff_doors(config, hotline, server):
    add_dana(hotline.db, config.secret_key)
    srv = server(workers=1, IVR_TRUSTED_PROXIES="1")
    voice = HttpTransport(srv.url)
    attack_line(voice)
    assert call(voice, WRONG, "+15555520001").said()[-1] == PIN_LOCKED  # a stranger's number: one try
    assert logged_in(call(voice, [PIN], OWN))  # before: the whole line refused PINs, hers too

    def sign_in(addr, password, code=""):
        http = requests.Session()
        page = http.get(srv.staff_url + "/console/login", timeout=30, headers={"X-Forwarded-For": addr}).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        plain(http)
        form = {"name": "dana", "password": password, "csrf_token": csrf, "unlock_code": code}
        resp = http.post(srv.staff_url + "/console/login", data=form, allow_redirects=False, timeout=30,
                         headers={"X-Forwarded-For": addr})
        plain(http)
        return http, resp

    assert sign_in("198.51.100.20", PASSWORD)[1].status_code == 303  # her office
    for addr in (f"203.0.113.{n}" for n in range(4)):
        assert [sign_in(addr, "guess")[1].status_code for _ in range(5)] == [401] * 5
    assert sign_in("198.51.100.77", PASSWORD)[1].status_code == 429  # a new address waits (answered at once)
    office, resp = sign_in("198.51.100.20", PASSWORD)  # her office does not
    assert resp.status_code == 303
    banner = office.get(srv.staff_url + "/console/", timeout=30).text
    assert "admin phone line is taking many wrong PINs" in banner and "guesses at &#39;dana&#39;" in banner
    metrics = requests.get(srv.staff_url + "/metrics", timeout=30).text
    assert under_attack_value(metrics, "admin line") == 1 and under_attack_value(metrics, "console accounts") == 1
    made = subprocess.run([str(IVR), "users", "unlock", "dana", "--reason", "new laptop"], capture_output=True,
                          text=True, env=server_env(config), timeout=60)
    code = re.search(r"unlock code for dana: (\S+)", made.stdout).group(1)
    assert sign_in("198.51.100.77", PASSWORD, code)[1].status_code == 303
