"""The agent side under `ivr serve` (gunicorn, `ivr background`, the real database) with a local stand-in for
Twilio's REST API: the agent line dials an owed callback, the desk shows the caller and takes a wrap-up that
the report counts, "call now" has Twilio ring the agent, and the retention runs in the background."""
from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from conftest import AUTH_TOKEN
from ivr.store import agents, desk, queues, sealed
from ivr.store.db import Database
from ivr.store.models import Callback, User, utcnow
from ivr.store.users import create_token
from ivr.tools.simulate import HttpTransport, SimulatedCall
from stubs import StubHost

pytestmark = pytest.mark.slow

ACCOUNT = "AC" + "d" * 32
HOTLINE, AGENT_PHONE, CUSTOMER = "+15555550100", "+15555550500", "+12025550123"


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def callback_row(db, sid):
    with db.read() as conn:
        return conn.execute(select(Callback.__table__).where(Callback.call_sid == sid)).first()


class Browser:
    """requests with the console's cookies. They are Secure (as deployed, behind TLS); like a browser on
    localhost, it sends them over plain HTTP to the test server anyway."""

    def __init__(self, base):
        self.base, self.http = base, requests.Session()

    def get(self, path):
        return self._plain(self.http.get(self.base + path))

    def _plain(self, resp):
        for cookie in self.http.cookies:
            cookie.secure = False
        return resp

    def csrf(self, html: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def login(self, name, password):
        page = self.get("/console/login").text
        resp = self._plain(self.http.post(self.base + "/console/login", allow_redirects=False,
                                          data={"name": name, "password": password, "csrf_token": self.csrf(page)}))
        assert resp.status_code == 303, resp.text[-300:]

    def post(self, path, data):
        page = self.get("/console/desk").text
        resp = self._plain(self.http.post(self.base + path, data={**data, "csrf_token": self.csrf(page)},
                                          allow_redirects=False))
        return self.get(resp.headers["Location"]) if resp.status_code == 303 else resp


def test_callbacks_dialled_wrapped_up_reported_and_forgotten_under_ivr_serve(config, server):
    calls_path = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    rest = StubHost({calls_path: (201, {"Content-Type": "application/json"},
                                  json.dumps({"sid": "CA" + "f" * 32, "status": "queued"}).encode())})
    db = Database(config.db_url)
    try:
        srv = server(TWILIO_ACCOUNT_SID=ACCOUNT, IVR_TWILIO_API_URL=rest.origin, IVR_HOTLINE_NUMBER=HOTLINE,
                     IVR_HOUSEKEEPING_SECONDS="0.5")
        with db.write() as conn:
            conn.execute(User.__table__.insert().values(name="aggie", role="agent", active=True, created_at=utcnow(),
                                                        password_hash=generate_password_hash("agent password 1")))
        agents.add_agent(db, config.secret_key, "alex", AGENT_PHONE, "2468", actor="test")
        desk.link_user(db, "alex", "aggie", actor="test")

        # A caller in message mode presses 0, then 1: a callback is owed.
        caller = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0", "1"], caller=CUSTOMER).run()
        assert caller.said()[-1].startswith("Thank you. We will call you back")
        owed = wait_for(lambda: callback_row(db, caller.call_sid))
        assert sealed.is_sealed(owed.number) and owed.number_masked == "***" + CUSTOMER[-4:]
        assert owed.status == "waiting"

        # The agent signs in on the agent line with nobody waiting: offered the callback, presses 1, the line dials.
        agent = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["2468", "1"], caller=AGENT_PHONE, to=HOTLINE,
                              answer="completed", max_requests=5).run("/voice/agent")
        assert any(s.startswith("A callback is owed to a caller in English") for s in agent.said())
        assert agent.dialled == [(CUSTOMER, HOTLINE)]
        done = callback_row(db, caller.call_sid)
        assert (done.status, done.number, done.number_masked) == ("done", None, "***0123")  # the number is gone

        # The desk shows whom the agent was with, and takes the wrap-up.
        browser = Browser(srv.staff_url)
        browser.login("aggie", "agent password 1")
        live = browser.get("/console/desk/live").text
        assert f'data-call-sid="{caller.call_sid}"' in live and "***0123" in live and "English" in live
        assert "0 agent" in re.search(r"Menu path</dt><dd>([^<]*)", live).group(1)  # pressed 0 for a person
        resp = browser.post("/console/desk/wrap-up", {"code": "fraud_reported", "note": "card blocked"})
        assert resp.ok and "Wrap-up recorded" in resp.text
        assert "No caller right now." in browser.get("/console/desk/live").text

        # The report counts it: API, and the console's CSV.
        with db.write() as conn:
            conn.execute(update(User).where(User.name == "aggie").values(role="viewer"))
        token = create_token(db, "aggie", actor="test")
        report = requests.get(srv.staff_url + "/api/reports?since=1h", headers={"Authorization": f"Bearer {token}"}).json()
        assert report["wrap_ups"]["by_code"] == {"fraud_reported": 1}
        assert report["callbacks"]["by_status"] == {"done": 1} and report["callbacks"]["kept"] == 1
        assert "wrap_ups.by_code,fraud_reported,1" in browser.get("/console/reports.csv").text
        with db.write() as conn:
            conn.execute(update(User).where(User.name == "aggie").values(role="agent"))

        # "Call now": Twilio is asked to ring the agent's phone, with our URL for when they answer.
        queues.request_callback(db, call_sid="CA" + "7" * 32, number="+15555550777", language="es",
                                queue="general", priority=10, reason="voicemail")
        second = callback_row(db, "CA" + "7" * 32)
        resp = browser.post(f"/console/desk/callbacks/{second.id}/call", {})
        assert resp.ok and "will ring now" in resp.text, resp.text[-500:]
        (method, path, _auth), = [r for r in rest.requests if r[1] == calls_path]
        sent = parse_qs(rest.bodies[-1].decode())
        assert (method, sent["To"], sent["From"]) == ("POST", [AGENT_PHONE], [HOTLINE])
        url = urlsplit(sent["Url"][0])
        # Twilio calls the agent (from the hotline's number) and requests the URL when they answer.
        rang = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, caller=HOTLINE, to=AGENT_PHONE, answer="no-answer",
                             max_requests=3)
        rang.params["Direction"] = "outbound-api"
        rang = rang.run(f"{url.path}?{url.query}")
        assert any("in Español" in s for s in rang.said()) and rang.dialled == [("+15555550777", HOTLINE)]
        retry = callback_row(db, "CA" + "7" * 32)
        assert (retry.status, retry.attempts, sealed.is_sealed(retry.number)) == ("waiting", 1, True)

        # ivr background applies the retention: a callback closed long ago loses what was left.
        with db.write() as conn:
            conn.execute(update(Callback).where(Callback.call_sid == caller.call_sid)
                         .values(done_at=utcnow() - timedelta(days=8), note="called back",
                                 voicemail_url="https://api.twilio.com/RE1"))
        wait_for(lambda: callback_row(db, caller.call_sid).voicemail_url is None)
        assert callback_row(db, caller.call_sid).note is None
    finally:
        rest.close()
        db.dispose()


def test_the_desk_shows_the_connected_caller_without_a_reload_and_its_wrap_up_reaches_the_report(
        config, server, page):
    """In Chromium: the agent's desk is open; the agent line connects a caller; the desk shows them by itself."""
    from ivr.store.state import set_mode
    from ivr.store.users import add_user
    from ivr.tools.simulate import TwilioQueues
    from test_console_browser import PASSWORD, SCREENSHOTS

    srv = server()
    db = Database(config.db_url)
    try:
        add_user(db, "aggie", "agent", actor="test", password=PASSWORD)
        agents.add_agent(db, config.secret_key, "alex", AGENT_PHONE, "2468", actor="test")
        desk.link_user(db, "alex", "aggie", actor="test")
        set_mode(db, "live", reason="agents on shift", actor="test")
        page.goto(srv.staff_url + "/console/desk")
        page.get_by_label("Name").fill("aggie")
        page.get_by_label("Password").fill(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(srv.staff_url + "/console/desk")
        assert page.locator("#live").get_by_text("No caller right now.").is_visible()

        twilio = TwilioQueues()
        caller = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["7"], caller=CUSTOMER, queues=twilio)
        caller.run()  # fraud: waits in the fraud queue
        wait_for(lambda: queues.next_waiting(db))
        SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["2468"], caller=AGENT_PHONE, to=HOTLINE,
                      queues=twilio, max_requests=3).run("/voice/agent")
        assert caller.result.ended == "bridged"
        context = page.locator(f'[data-call-sid="{caller.result.call_sid}"]')
        context.wait_for(timeout=20_000)  # the live part refreshes every 5 s: no reload (slack for a busy machine)
        assert "***0123" in context.inner_text() and "English" in context.inner_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "agent-desk.png"), full_page=True)

        page.get_by_label("Outcome").select_option("fraud_reported")
        page.get_by_label("Note").fill("card blocked, new one posted")
        page.get_by_role("button", name="Record the wrap-up").click()
        page.wait_for_url(srv.staff_url + "/console/desk")
        assert page.get_by_text("Wrap-up recorded").is_visible()
        page.goto(srv.staff_url + "/console/reports?since=1h")
        assert page.locator("#wrap-up-codes").get_by_text("fraud_reported").is_visible()
        page.screenshot(path=str(SCREENSHOTS / "reports.png"), full_page=True)
    finally:
        db.dispose()
