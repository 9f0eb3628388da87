"""No secret in any log line: sign-ins (with the password typed into the name field), API tokens (right and
wrong) and PINs on the admin line go through `ivr serve` with JSON logs; then every log is searched for each
password, PIN and token used."""
from __future__ import annotations

import re

import pytest
import requests
from sqlalchemy import select

from conftest import AUTH_TOKEN
from helpers import wait_for
from ivr.store.db import Database
from ivr.store.models import AuditEntry
from ivr.store.users import add_user, create_token
from ivr.tools.simulate import HttpTransport, SimulatedCall

PASSWORD = "Kestrel7Quartz4Lantern"
PASSWORD_AS_NAME = "Typed9Into8The7Name6Field"  # the slip this test is about
WRONG_PASSWORD = "Marigold3Harbor5Copper"
PIN, WRONG_PIN = "482916", "739104"
WRONG_TOKEN = "ivr_Zebra2Lagoon4Meadow6Orchid8"


def signed_in(url: str, name: str, password: str) -> requests.Response:
    with requests.Session() as browser:
        form = browser.get(url + "/console/login", timeout=30).text
        for cookie in browser.cookies:  # a production server's cookies are https-only; this test speaks http
            cookie.secure = False
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        return browser.post(url + "/console/login", data={"name": name, "password": password, "csrf_token": csrf},
                            allow_redirects=False, timeout=30)


@pytest.mark.slow
def test_no_password_pin_or_token_used_reaches_the_served_logs(config, server):
    db = Database(config.db_url)
    add_user(db, "dana", "admin", actor="test", password=PASSWORD, phone_pin=PIN)
    token = create_token(db, "dana", actor="test")
    srv = server(IVR_LOG_FORMAT="json")

    assert signed_in(srv.staff_url, PASSWORD_AS_NAME, PASSWORD).status_code == 401
    for _ in range(3):  # enough to throttle, so the refusal's line and audit entry are written too
        assert signed_in(srv.staff_url, "dana", WRONG_PASSWORD).status_code in (401, 429)
        signed_in(srv.staff_url, PASSWORD_AS_NAME, WRONG_PASSWORD)
    api = srv.staff_url + "/api/mode"
    assert requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
    assert requests.get(api, headers={"Authorization": f"Bearer {WRONG_TOKEN}"}, timeout=30).status_code == 401
    assert requests.get(api + f"?token={WRONG_TOKEN}", timeout=30).status_code == 401

    def admin_call(keys):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys, caller="+15555550666").run("/voice/admin")

    assert admin_call([WRONG_PIN, PIN, "9"]).said()

    secrets = {"password": PASSWORD, "password typed as the name": PASSWORD_AS_NAME,
               "wrong password": WRONG_PASSWORD, "PIN": PIN, "wrong PIN": WRONG_PIN, "API token": token,
               "wrong token": WRONG_TOKEN, "Twilio auth token": AUTH_TOKEN}
    wait_for(lambda: srv.log_path.read_text().count("failed sign-in for") >= 4)
    text = srv.log_path.read_text()  # every line, whatever it is (access log, workers, ivr background)
    assert "/voice/admin" in text and "refused GET /api/mode" in text  # what happened was logged
    assert [what for what, secret in secrets.items() if secret in text] == []
    with db.read() as conn:  # the audit log is read by every viewer: no typed password there either
        subjects = " ".join(conn.execute(select(AuditEntry.subject)).scalars())
    db.dispose()
    assert PASSWORD_AS_NAME not in subjects
