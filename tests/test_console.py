"""The web console: sign-in, roles on every route, CSRF on every form, audited changes, escaping, the pages."""
from __future__ import annotations

import csv
import io
import logging
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from flask import Flask, url_for
from sqlalchemy import func, insert, select, update
from werkzeug.security import generate_password_hash

from ivr.store import agents, announcements, incidents, queues, scheduled
from ivr.store.users import create_token, list_tokens, list_users
from helpers import approved
from ivr.media import tts
from ivr.core.flow import reference
from ivr.config import Config
from ivr.ops.console import init_app
from ivr.store.models import (Announcement, AuditEntry, BriefingVersion, Call, CallEvent, ConsoleSession, HotlineState,
                        Incident, LoginFailure, User, utcnow)

PASSWORD = "correct horse battery staple"
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"

# The least role each console route needs (None: anyone). A route missing here fails the first test.
ROLES_NEEDED = {
    "console.login": None, "console.logout": "viewer", "console.not_found": None,
    "console.dashboard": "viewer", "console.live": "viewer", "console.mode": "ops",
    "console.announcements_page": "viewer", "console.announcement_tts": "admin",
    "console.announcement_upload": "admin", "console.announcement_publish": "admin",
    "console.announcement_rollback": "admin", "console.announcement_approval": "viewer",
    "console.announcement_approve": "ops", "console.announcement_override": "admin",
    "console.rules": "viewer", "console.rules_validate": "viewer", "console.rules_save": "admin",
    "console.audit_log": "viewer", "console.audit_csv": "viewer",
    "console.briefing": "viewer", "console.briefing_create": "admin", "console.briefing_publish": "admin",
    "console.calls": "viewer", "console.calls_csv": "viewer",
    "console.desk_page": "agent", "console.desk_live": "agent", "console.desk_status": "agent",
    "console.desk_wrap_up": "agent", "console.desk_call_now": "agent",
    "console.reports_view": "viewer", "console.reports_csv": "viewer",
    "console.incidents_page": "viewer", "console.incident_create": "admin", "console.incident_update": "admin",
    "console.incident_activate": "admin",
    "console.callbacks_page": "viewer", "console.callback_done": "agent",
    "console.jobs_page": "viewer", "console.job_retry": "ops",
    "console.schedule_page": "viewer", "console.schedule_add": "ops", "console.schedule_cancel": "ops",
    "console.notices_page": "viewer", "console.notices_live": "viewer", "console.notice_pause": "ops",
    "console.notice_cancel": "admin",
    "console.notices_report": "viewer", "console.notices_report_csv": "viewer",
    "console.agents_page": "ops", "console.agent_add": "admin", "console.agent_deactivate": "admin",
    "console.users_page": "admin", "console.user_add": "admin", "console.user_role": "admin",
    "console.user_active": "admin", "console.user_password": "admin", "console.user_pin": "admin",
    "console.token_create": "admin", "console.token_revoke": "admin",
}
ROLES = ("viewer", "agent", "ops", "admin")
USERS = {"viewer": "vera", "agent": "aggie", "ops": "otto", "admin": "ada"}


def console_routes() -> list[tuple[str, str, str]]:
    """(method, endpoint, URL) of every console route, read from a Flask url_map so none can be forgotten."""
    app = Flask("routes")
    app.config["IVR"] = Config()
    init_app(app)
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("console.") and rule.endpoint != "console.static":
                # A view's defaults (one view under several URLs) are not URL parameters.
                url = url_for(rule.endpoint, **{arg: 1 for arg in rule.arguments - set(rule.defaults or ())})
                out += [(m, rule.endpoint, url) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


ROUTES = console_routes()
PROTECTED = [r for r in ROUTES if ROLES_NEEDED.get(r[1], "admin") is not None]
POSTS = [r for r in ROUTES if r[0] == "POST"]


def route_id(route) -> str:
    return f"{route[0]} {route[2]}"


class Console:
    """A browser-like client of the console: keeps its cookie and sends the CSRF token like the forms do."""

    def __init__(self, app):
        self.client = app.test_client()

    def token(self) -> str | None:
        with self.client.session_transaction() as sess:
            return sess.get("csrf")

    def login(self, name: str, password: str = PASSWORD, **kw):
        if not self.token():
            self.client.get("/console/login").close()
        return self.client.post("/console/login", data={"name": name, "password": password,
                                                        "csrf_token": self.token()}, **kw)

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict | None = None, *, csrf: bool = True, **kw):
        data = dict(data or {})
        if csrf:
            if not self.token():
                self.client.get("/console/login").close()
            data.setdefault("csrf_token", self.token())
        return self.client.post(url, data=data, **kw)


@pytest.fixture
def users(hotline):
    """A viewer, an agent, an operator and an admin (hashed cheaply: these tests sign in often)."""
    with hotline.db.write() as conn:
        for role, name in USERS.items():
            conn.execute(insert(User).values(name=name, role=role, active=True, created_at=utcnow(),
                                             password_hash=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")))
    return USERS


@pytest.fixture
def as_role(app, users):
    """as_role("ops") -> a Console signed in as the operator."""

    def _signed_in(role: str) -> Console:
        console = Console(app)
        resp = console.login(users[role])
        assert resp.status_code == 303, resp.get_data(as_text=True)
        return console

    return _signed_in


def scalar(hotline, query):
    with hotline.db.read() as conn:
        return conn.execute(query).scalar()


def audit_rows(hotline, action_prefix: str = "") -> list:
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.action.startswith(action_prefix))
                            .order_by(AuditEntry.id)).all()


def snapshot(hotline) -> tuple:
    """Everything a console form can change."""
    with hotline.db.read() as conn:
        return (
            conn.execute(select(HotlineState.mode, HotlineState.content_version)).one(),
            conn.execute(select(func.count()).select_from(AuditEntry)).scalar(),
            conn.execute(select(Announcement.id, Announcement.status).order_by(Announcement.id)).all(),
            conn.execute(select(BriefingVersion.id, BriefingVersion.status).order_by(BriefingVersion.id)).all(),
            hotline.rules.path.read_text(),
        )


def page(resp) -> str:
    text = resp.get_data(as_text=True)
    resp.close()
    return text


# -- every route: signed in, with the right role ------------------------------------------------------------


def test_every_console_route_declares_its_role():
    endpoints = {endpoint for _, endpoint, _ in ROUTES}
    assert endpoints == set(ROLES_NEEDED), "add the new route to ROLES_NEEDED (and to FORMS if it is a POST)"
    app = Flask("roles")
    app.config["IVR"] = Config()
    init_app(app)
    for endpoint, needed in ROLES_NEEDED.items():
        assert getattr(app.view_functions[endpoint], "console_role", "admin") == needed, endpoint


def test_the_real_app_has_exactly_these_console_routes(app):
    real = {(m, rule.endpoint) for rule in app.url_map.iter_rules() if rule.endpoint.startswith("console.")
            and rule.endpoint != "console.static" for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert real == {(m, e) for m, e, _ in ROUTES}


@pytest.mark.parametrize("route", PROTECTED, ids=route_id)
def test_anonymous_requests_are_sent_to_sign_in(app, hotline, route):
    method, _, url = route
    before = snapshot(hotline)
    resp = getattr(app.test_client(), method.lower())(url)
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/console/login")
    assert snapshot(hotline) == before


@pytest.mark.parametrize("route,role", [(r, role) for r in PROTECTED for role in ROLES
                                        if ROLES.index(role) < ROLES.index(ROLES_NEEDED[r[1]])],
                         ids=lambda v: route_id(v) if isinstance(v, tuple) else v)
def test_a_role_below_the_route_s_is_refused_with_403(as_role, hotline, route, role):
    method, endpoint, url = route
    console = as_role(role)
    before = snapshot(hotline)
    resp = getattr(console, method.lower())(url)
    body = page(resp)
    assert resp.status_code == 403 and f"needs the {ROLES_NEEDED[endpoint]} role" in body
    assert snapshot(hotline) == before


@pytest.mark.parametrize("route", [r for r in ROUTES if r[0] == "GET"], ids=route_id)
def test_every_page_opens_for_the_least_role_it_needs(as_role, app, targets, route):
    _, endpoint, url = route
    arguments = next(app.url_map.iter_rules(endpoint)).arguments
    if arguments & targets.keys():  # a page about one thing opens on one that exists (PostgreSQL: not id 1)
        with app.test_request_context():
            url = url_for(endpoint, **{k: v for k, v in targets.items() if k in arguments})
    needed = ROLES_NEEDED[endpoint]
    resp = as_role(needed).get(url) if needed else app.test_client().get(url)
    assert resp.status_code == (404 if endpoint == "console.not_found" else 200)
    if resp.mimetype == "text/html":
        assert resp.headers["Cache-Control"] == "no-store" and "frame-ancestors 'none'" in \
            resp.headers["Content-Security-Policy"]
    resp.close()


def test_an_unknown_console_address_gets_the_console_s_own_404(as_role, app):
    for client in (app.test_client(), as_role("viewer")):
        resp = client.get("/console/no/such/page")
        body = page(resp)
        assert resp.status_code == 404 and "console.css" in body and "There is no console page at this address" in body
    assert "Sign out" in body and "Dashboard" in body  # signed in: the console's navigation is there


def test_static_files_need_no_sign_in(app):
    resp = app.test_client().get("/console/static/console.css")
    assert resp.status_code == 200 and resp.mimetype == "text/css"
    resp.close()


# -- CSRF --------------------------------------------------------------------------------------------------


@pytest.fixture
def targets(hotline):
    """A draft announcement and a draft briefing, for the routes that act on one."""
    from ivr.store import briefings

    # A second published version (so there is one to roll back to) and a draft (to publish).
    approved(hotline.db, announcements.create_version(hotline.db, lang="en", topic="main", text="Version two.",
                                                      source="text", audio_=None, actor="test", publish=True))
    draft = announcements.create_version(hotline.db, lang="en", topic="main", text="A draft.", source="text",
                                         audio_=None, actor="test")
    brief = briefings.create(hotline.db, {"facts": "Draft facts."}, actor="test", reason="setup")
    incident = incidents.create(hotline.db, title="A draft incident", severity="high", exposed="",
                                severities=hotline.rules.rules.severities, actor="test")
    callback = _desk_targets(hotline)
    agents.add_agent(hotline.db, hotline.config.secret_key, "zed", "+15551239999", "1234", actor="test")
    vera = next(u["id"] for u in list_users(hotline.db) if u["name"] == "vera")
    create_token(hotline.db, "vera", actor="test", label="script")
    change = scheduled.add(hotline.db, kind="mode", target="live", at=utcnow() + timedelta(days=1), reason="shift",
                           actor="test")
    return {"announcement_id": draft["id"], "briefing_id": brief["id"], "callback_id": callback,
            "incident_id": incident, "user_id": vera, "job_id": _dead_letter(hotline), "change_id": change["id"],
            "campaign_id": _sending_campaign(hotline), "action": "pause"}


def _sending_campaign(hotline) -> int:
    """A notice campaign being sent, for the Notices page's pause button."""
    from ivr.store.models import NoticeCampaign

    with hotline.db.write() as conn:
        return conn.execute(insert(NoticeCampaign).values(name="Notice", state="sending", statements="{}")
                            .returning(NoticeCampaign.id)).scalar()


def _dead_letter(hotline) -> int:
    """A job that failed for good, for the Jobs page's retry form."""
    from ivr.store.models import Job

    with hotline.db.write() as conn:
        return conn.execute(insert(Job).values(kind="sms", payload="{}", status="failed", attempts=5, run_after=utcnow(),
                                               last_error="TwilioRestException: 503", created_at=utcnow(),
                                               updated_at=utcnow()).returning(Job.id)).scalar()


def _desk_targets(hotline) -> int:
    """The admin is also an agent, with a caller to wrap up and a callback owed; returns the callback's id."""
    from ivr.store import agents, desk, queues

    agents.add_agent(hotline.db, hotline.config.secret_key, "ada-agent", "+15555550501", "2468", actor="test")
    desk.link_user(hotline.db, "ada-agent", "ada", actor="test")
    desk.set_status(hotline.db, "ada-agent", "on_call", call_sid="CA" + "d" * 32)
    queues.request_callback(hotline.db, call_sid="CA" + "e" * 32, number="+15555550777", language="en",
                            queue="general", priority=10, reason="callback offered")
    return queues.callbacks(hotline.db)[0]["id"]


def token_id(hotline) -> int:
    return list_tokens(hotline.db)[0]["id"]


@pytest.fixture(scope="module")
def speech_wav() -> bytes:
    return tts.synthesize("A statement uploaded through the console.", "en", engines=("espeak",)).data


def valid_form(endpoint: str, hotline, wav: bytes) -> dict:
    """A form each POST route accepts, so a refusal can only come from the missing token."""
    rules_text = hotline.rules.path.read_text()
    forms = {
        "console.login": {"name": "ada", "password": PASSWORD},
        "console.logout": {},
        "console.mode": {"mode": "live", "expected": "message", "confirm": "yes", "reason": "agents on shift",
                         "override": "a test: nobody needs to answer"},
        "console.announcement_tts": {"lang": "en", "topic": "main", "text": "Hello.", "publish": "yes",
                                     "reason": "update"},
        "console.announcement_upload": {"lang": "en", "topic": "main", "reason": "CEO statement", "publish": "yes",
                                        "file": (io.BytesIO(wav), "statement.wav")},
        "console.announcement_publish": {"reason": "legal approved"},
        "console.announcement_approve": {"reason": "heard it"},
        "console.announcement_override": {"reason": "legal unreachable, callers hear wrong figures"},
        "console.announcement_rollback": {"lang": "en", "topic": "main", "reason": "wrong figures"},
        "console.rules_validate": {"text": rules_text},
        "console.rules_save": {"text": rules_text.replace("max_attempts: 3", "max_attempts: 4"), "reason": "kinder",
                               "base_sha": __import__("hashlib").sha256(rules_text.encode()).hexdigest()},
        "console.briefing_create": {"facts": "We were breached.", "reason": "first briefing", "publish": "yes"},
        "console.briefing_publish": {"reason": "approved"},
        "console.desk_status": {"status": "break"},
        "console.desk_wrap_up": {"code": "question_answered", "note": "told them what to do"},
        "console.desk_call_now": {},
        "console.incident_create": {"title": "Second breach", "severity": "high", "reason": "new disclosure"},
        "console.incident_update": {"title": "Card data breach", "severity": "critical", "exposed": "card numbers",
                                    "reason": "forensics report"},
        "console.incident_activate": {"reason": "disclosure day", "carry_over": "yes"},
        "console.callback_done": {"reason": "called back", "note": "reached"},
        "console.job_retry": {"reason": "Twilio is back"},
        "console.schedule_add": {"kind": "mode", "target": "message", "at": "2099-01-01T08:00", "reason": "night"},
        "console.schedule_cancel": {"reason": "shift moved"},
        "console.notice_pause": {"reason": "legal asked us to hold"},
        "console.notice_cancel": {"reason": "sent by post instead"},
        "console.agent_add": {"name": "amy", "phone": "+15551230000", "pin": "1234", "reason": "new agent"},
        "console.agent_deactivate": {"name": "zed", "reason": "left the team"},
        "console.user_add": {"name": "newbie", "role": "viewer", "password": "0123456789ab", "reason": "new hire"},
        "console.user_role": {"role": "ops", "reason": "promoted"},
        "console.user_active": {"active": "no", "reason": "left"},
        "console.user_password": {"password": "a brand new password", "reason": "forgotten"},
        "console.user_pin": {"pin": "24681357", "reason": "forgotten"},
        "console.token_create": {"label": "monitoring", "expires": "30"},
        "console.token_revoke": {"token_id": str(token_id(hotline)), "reason": "leaked"},
    }
    return forms[endpoint]


@pytest.mark.parametrize("route", POSTS, ids=route_id)
def test_forms_without_a_valid_csrf_token_are_refused_and_change_nothing(app, hotline, as_role, targets,
                                                                         speech_wav, caplog, route):
    _, endpoint, _ = route
    console = as_role("admin") if endpoint != "console.login" else Console(app)
    arguments = next(app.url_map.iter_rules(endpoint)).arguments
    with app.test_request_context():
        url = url_for(endpoint, **{k: v for k, v in targets.items() if k in arguments})
    if endpoint == "console.announcement_approve":  # the admin approves a draft someone else asked to publish
        announcements.publish(hotline.db, targets["announcement_id"], actor="test")
    before = snapshot(hotline)
    sessions = scalar(hotline, select(func.count()).select_from(ConsoleSession))
    for token in (None, "forged-token"):
        data = valid_form(endpoint, hotline, speech_wav)
        if token:
            data["csrf_token"] = token
        with caplog.at_level(logging.WARNING, logger="ivr.ops.console"):
            resp = console.post(url, data, csrf=False, content_type="multipart/form-data")
        body = page(resp)
        assert resp.status_code == 400 and "Nothing was changed" in body
        assert snapshot(hotline) == before
        assert scalar(hotline, select(func.count()).select_from(ConsoleSession)) == sessions
        assert "CSRF" in caplog.text
    # The same form with the token goes through: the refusal above was the token's doing.
    resp = console.post(url, valid_form(endpoint, hotline, speech_wav), content_type="multipart/form-data")
    if endpoint == "console.desk_call_now":  # needs Twilio's REST API: tests/test_agent_desk.py, under ivr serve
        assert "needs TWILIO_ACCOUNT_SID" in page(resp)
        return
    assert resp.status_code in (200, 303), page(resp)
    if endpoint not in ("console.login", "console.logout", "console.rules_validate"):
        assert snapshot(hotline) != before
    resp.close()


class Forms(HTMLParser):
    """The forms of a page, with their fields, and the labels' targets."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.labels: set[str] = set()
        self.fields: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attrs.get("method") or "get").lower(), "inputs": []})
        elif tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        elif tag in ("input", "select", "textarea"):
            self.fields.append(attrs)
            if self.forms:
                self.forms[-1]["inputs"].append(attrs)


def test_every_form_on_every_page_carries_the_token_and_every_field_a_label(as_role, hotline, targets, place_call):
    place_call(keys=["1"])
    admin = as_role("admin")
    admin.post("/console/briefing", {"facts": "Facts.", "reason": "v2"}).close()
    n_forms = 0
    for method, endpoint, url in ROUTES:
        if method != "GET" or endpoint.endswith("_csv") or endpoint == "console.live":
            continue
        parser = Forms()
        parser.feed(page(admin.get(url) if endpoint != "console.login" else Console(admin.client.application)
                         .get(url)))
        for form in parser.forms:
            if form["method"] == "post":
                n_forms += 1
                tokens = [i for i in form["inputs"] if i.get("name") == "csrf_token"]
                assert len(tokens) == 1 and tokens[0]["type"] == "hidden" and tokens[0]["value"], (url, form)
        for field in parser.fields:
            if field.get("type") not in ("hidden", "submit"):
                assert field.get("id") in parser.labels, (url, field)
    assert n_forms >= 10


# -- signing in --------------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_and_gives_no_session(app, users):
    console = Console(app)
    resp = console.login("ada", "not the password")
    assert resp.status_code == 401 and "Wrong user name or password" in page(resp)
    unknown = console.login("nobody", PASSWORD)
    assert unknown.status_code == 401 and "Wrong user name or password" in page(unknown)
    assert console.get("/console/").status_code == 303


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(app, users):
    console = Console(app)
    assert console.get("/console/calls?from=2026-01-01").headers["Location"] == \
        "/console/login?next=/console/calls?from%3D2026-01-01"
    console.get("/console/login?next=/console/calls").close()
    resp = console.client.post("/console/login", data={"name": "vera", "password": PASSWORD, "next": "/console/calls",
                                                       "csrf_token": console.token()})
    assert resp.headers["Location"] == "/console/calls"
    for evil in ("https://evil.example/console/", "//evil.example/console/", "/api/mode", "/\\evil.example"):
        other = Console(app)
        other.get("/console/login").close()
        resp = other.client.post("/console/login", data={"name": "vera", "password": PASSWORD, "next": evil,
                                                         "csrf_token": other.token()})
        assert resp.headers["Location"] == "/console/", evil


def test_five_failures_lock_that_user_from_that_address_for_every_worker(app, config, users):
    console = Console(app)
    for _ in range(5):
        assert console.login("ada", "wrong password").status_code == 401
    locked = console.login("ada", PASSWORD)
    assert locked.status_code == 429 and "Too many failed sign-ins" in page(locked)
    # Another worker (another app on the same database) refuses too; the count is in the database.
    from ivr.app import create_app

    other = create_app(config)
    try:
        assert Console(other).login("ada", PASSWORD).status_code == 429
    finally:
        other.extensions["ivr"].close()
    # The same user from another address, and another user from this one, are not locked out.
    assert Console(app).login("ada", PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 303
    assert Console(app).login("otto").status_code == 303


def test_failures_older_than_the_window_do_not_count(app, hotline, users):
    console = Console(app)
    for _ in range(5):
        console.login("ada", "wrong password").close()
    with hotline.db.write() as conn:
        conn.execute(update(LoginFailure).values(at=utcnow() - timedelta(minutes=16)))
    assert console.login("ada", PASSWORD).status_code == 303
    assert scalar(hotline, select(func.count()).select_from(LoginFailure)) == 0  # cleared on success


def test_the_session_cookie_is_httponly_samesite_and_lasts_one_shift(app, hotline, users):
    resp = Console(app).login("vera")
    cookie = resp.headers["Set-Cookie"]
    # Secure by default: only development (`make run` on plain http) leaves it off.
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Expires=" in cookie
    with hotline.db.read() as conn:
        row = conn.execute(select(ConsoleSession.created_at, ConsoleSession.expires_at)).one()
    assert row.expires_at - row.created_at == timedelta(hours=8)


def test_the_cookie_is_secure_in_development_only_behind_https(config, users):
    from ivr.app import create_app

    for public_url, secure in (("", False), ("https://hotline.example.com", True)):
        app = create_app(config.with_overrides(env="development", public_url=public_url))
        try:
            assert ("Secure" in Console(app).login("vera").headers["Set-Cookie"]) == secure, public_url
        finally:
            app.extensions["ivr"].close()


def test_an_expired_session_is_refused_and_asks_to_sign_in_again(as_role, hotline):
    console = as_role("ops")
    assert console.get("/console/").status_code == 200
    with hotline.db.write() as conn:
        conn.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    resp = console.get("/console/")
    assert resp.status_code == 303
    assert "Your session has expired" in page(console.get(resp.headers["Location"]))
    before = snapshot(hotline)
    form = {"mode": "live", "expected": "message", "confirm": "yes", "reason": "too late"}
    assert console.post("/console/mode", form).status_code == 303
    assert snapshot(hotline) == before


def test_signing_out_ends_the_session_on_the_server_too(as_role, hotline):
    console = as_role("viewer")
    stolen = console.client.get_cookie("ivr_console").value
    assert console.post("/console/logout").status_code == 303
    assert scalar(hotline, select(func.count()).select_from(ConsoleSession)) == 0
    thief = Console(console.client.application)
    thief.client.set_cookie("ivr_console", stolen)
    assert thief.get("/console/").status_code == 303


def test_a_deactivated_user_is_signed_out_at_once(as_role, hotline):
    console = as_role("admin")
    with hotline.db.write() as conn:
        conn.execute(update(User).where(User.name == "ada").values(active=False))
    assert console.get("/console/").status_code == 303


# -- changes are audited -----------------------------------------------------------------------------------


def test_every_change_is_audited_with_its_actor_and_reason(as_role, hotline, place_call):
    ops, admin = as_role("ops"), as_role("admin")
    # The mode: confirmation and reason required; then the next call is queued.
    refused = ops.post("/console/mode", {"mode": "live", "expected": "message", "reason": "agents on shift"})
    assert refused.status_code == 400 and "confirm" in page(refused)
    refused = ops.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes", "reason": " "})
    assert refused.status_code == 400 and "reason is required" in page(refused)
    assert not audit_rows(hotline, "mode.")
    assert ops.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes",
                                      "reason": "agents on shift", "override": "a test"}).status_code == 303
    assert place_call(keys=["0"]).ended == "queued"
    stale = ops.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes", "reason": "again"})
    assert stale.status_code == 400 and "switched to live mode by you, in another tab or window" in page(stale)
    stale = as_role("admin").post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes",
                                                    "reason": "again"})
    assert stale.status_code == 400 and "switched to live mode by otto meanwhile" in page(stale)

    # Announcements: created from text and published (a second person approves), a draft published (approved
    # too), a rollback.
    created = admin.post("/console/announcements/tts", {"lang": "en", "topic": "main", "text": "Version two.",
                                                        "publish": "yes", "reason": "initial statement"})
    assert created.status_code == 303
    first = scalar(hotline, select(Announcement.id).where(Announcement.status == "draft"))
    assert ops.post(f"/console/announcements/{first}/approve", {"reason": "heard it"}).status_code == 303
    admin.post("/console/announcements/tts", {"lang": "en", "topic": "main", "text": "Version three.",
                                              "reason": "draft for legal"}).close()
    draft = scalar(hotline, select(Announcement.id).where(Announcement.status == "draft"))
    assert admin.post(f"/console/announcements/{draft}/publish", {"reason": "legal approved"}).status_code == 303
    assert ops.post(f"/console/announcements/{draft}/approve", {"reason": "comms agree"}).status_code == 303
    assert admin.post("/console/announcements/rollback", {"lang": "en", "topic": "main",
                                                          "reason": "wrong figures"}).status_code == 303
    assert scalar(hotline, select(Announcement.version).where(
        Announcement.status == "published", Announcement.language == "en", Announcement.topic == "main")) == 2

    # The briefing: a draft, then published.
    assert admin.post("/console/briefing", {"facts": "Card numbers were not taken.",
                                            "reason": "first briefing"}).status_code == 303
    brief = scalar(hotline, select(BriefingVersion.id))
    assert admin.post(f"/console/briefing/{brief}/publish", {"reason": "comms approved"}).status_code == 303

    # The rules.
    text = hotline.rules.path.read_text()
    import hashlib

    new = text.replace("max_attempts: 3", "max_attempts: 4")
    assert new != text
    assert admin.post("/console/rules/save", {"text": new, "reason": "callers need another try",
                                              "base_sha": hashlib.sha256(text.encode()).hexdigest()}).status_code == 303
    assert hotline.rules.path.read_text() == new and hotline.rules.rules.menu.max_attempts == 4

    got = [(r.action, r.actor, r.reason) for r in audit_rows(hotline)
           if r.actor in ("otto", "ada") and r.action != "console.sign_in"]
    assert got == [
        ("mode.set", "otto", "agents on shift"),
        ("preflight.override", "otto", "a test"),
        ("announcement.create", "ada", "initial statement"),
        ("announcement.publish_requested", "ada", "initial statement"),
        ("announcement.approve", "otto", "heard it"),
        ("announcement.create", "ada", "draft for legal"),
        ("announcement.publish_requested", "ada", "legal approved"),
        ("announcement.approve", "otto", "comms agree"),
        ("announcement.publish", "ada", "wrong figures"),
        ("briefing.create", "ada", "first briefing"),
        ("briefing.publish", "ada", "comms approved"),
        ("rules.save", "ada", "callers need another try"),
    ]
    mode_row = audit_rows(hotline, "mode.")[0]
    assert (mode_row.from_value, mode_row.to_value) == ("message", "live")
    assert "max_attempts: 4" in audit_rows(hotline, "rules.")[0].to_value


def test_announcement_errors_are_shown_and_change_nothing(as_role, hotline, speech_wav):
    admin = as_role("admin")
    before = snapshot(hotline)
    cases = [
        ("/console/announcements/tts", {"lang": "xx", "topic": "main", "text": "Hi.", "reason": "r"}, "not configured"),
        ("/console/announcements/tts", {"lang": "en", "topic": "main", "text": "Hi."}, "reason is required"),
        ("/console/announcements/tts", {"lang": "en", "topic": "main", "text": " ", "reason": "r"}, "text is empty"),
        ("/console/announcements/999999/publish", {"reason": "r"}, "there is no announcement 999999"),
        ("/console/announcements/rollback", {"lang": "en", "topic": "main", "reason": "r"}, "no earlier published"),
        ("/console/announcements/upload", {"lang": "en", "topic": "main", "reason": "r"}, "choose an audio file"),
        ("/console/announcements/upload", {"lang": "en", "topic": "main", "reason": "r",
                                           "file": (io.BytesIO(b"<html>not audio</html>"), "x.wav")}, "undecodable"),
    ]
    for url, form, message in cases:
        resp = admin.post(url, form, content_type="multipart/form-data")
        body = page(resp).lower()
        assert resp.status_code == 400 and message in body and "nothing was changed" in body, (url, body[-3000:])
    assert snapshot(hotline) == before


def test_oversized_uploads_are_refused_with_a_clear_message(config, users, speech_wav):
    from ivr.app import create_app

    app = create_app(config.with_overrides(upload_max_bytes=len(speech_wav) // 2))
    try:
        admin = Console(app)
        admin.login("ada").close()
        before = snapshot(app.extensions["ivr"])
        form = {"lang": "en", "topic": "main", "reason": "r", "file": (io.BytesIO(speech_wav), "big.wav")}
        resp = admin.post("/console/announcements/upload", form, content_type="multipart/form-data")
        assert resp.status_code == 400 and "too_big" in page(resp)
        # Beyond what the server reads at all (the limit plus 1 MB of form): refused before anything is parsed.
        # (A body built by hand: the test client would spool a large file dict to a temporary file it never closes.)
        body = b"".join(b'--x\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v.encode())
                        for k, v in {"lang": "en", "topic": "main", "reason": "r", "csrf_token": admin.token()}.items())
        body += b'--x\r\nContent-Disposition: form-data; name="file"; filename="huge.wav"\r\n\r\n'
        body += b"\0" * 1_200_000 + speech_wav + b"\r\n--x--\r\n"
        resp = admin.client.post("/console/announcements/upload", data=body,
                                 content_type="multipart/form-data; boundary=x")
        assert resp.status_code == 413 and "larger than the" in page(resp) and "Nothing was stored" in page(resp)
        assert snapshot(app.extensions["ivr"]) == before
    finally:
        app.extensions["ivr"].close()


def test_an_upload_becomes_a_version_with_audio_callers_hear(as_role, hotline, speech_wav, place_call):
    admin = as_role("admin")
    resp = admin.post("/console/announcements/upload", {
        "lang": "en", "topic": "details", "reason": "CEO statement", "publish": "yes",
        "file": (io.BytesIO(speech_wav), "ceo.wav")}, content_type="multipart/form-data")
    assert resp.status_code == 303
    upload = scalar(hotline, select(Announcement.id).where(Announcement.source == "upload"))
    assert as_role("ops").post(f"/console/announcements/{upload}/approve", {"reason": "heard it"}).status_code == 303
    sha = scalar(hotline, select(Announcement.media_sha256).where(Announcement.source == "upload"))
    assert f'src="/media/{sha}.wav"' in page(admin.get("/console/announcements"))
    assert f'src="/media/{sha}.wav"' in page(admin.get("/console/"))
    assert any(h.url.endswith(f"/media/{sha}.wav") for h in place_call(keys=["1"]).heard)


def test_briefing_versions_publish_one_at_a_time_and_viewers_see_only_the_published(as_role, hotline):
    admin, viewer = as_role("admin"), as_role("viewer")
    admin.post("/console/briefing", {"facts": "First facts.", "publish": "yes", "reason": "v1"}).close()
    admin.post("/console/briefing", {"facts": "Second facts.", "answers": "Q: Was my card taken?\nA: No.",
                                     "publish": "yes", "reason": "v2"}).close()
    with hotline.db.read() as conn:
        assert conn.execute(select(BriefingVersion.version, BriefingVersion.status)
                            .order_by(BriefingVersion.version)).all() == [(1, "archived"), (2, "published")]
    body = page(viewer.get("/console/briefing"))
    assert "Second facts." in body and "Was my card taken?" in body and "First facts." not in body
    assert "Write a new version" not in body
    empty = admin.post("/console/briefing", {"reason": "nothing"})
    assert empty.status_code == 400 and "empty" in page(empty)


# -- rules -------------------------------------------------------------------------------------------------


def test_an_edited_rules_file_is_checked_line_by_line_and_never_saved_when_invalid(as_role, hotline):
    admin = as_role("admin")
    text = hotline.rules.path.read_text()
    broken = text.replace("max_attempts: 3", "max_attempts: 99")
    body = page(admin.post("/console/rules/validate", {"text": broken}))
    line = broken.splitlines().index(next(x for x in broken.splitlines() if "max_attempts: 99" in x)) + 1
    assert re.search(rf">{line}</td><td[^>]*><code>menu\.max_attempts</code>", body)
    assert page(admin.post("/console/rules/validate", {"text": text})).count("No problems") == 1
    import hashlib

    resp = admin.post("/console/rules/save", {"text": broken, "reason": "r",
                                              "base_sha": hashlib.sha256(text.encode()).hexdigest()})
    assert resp.status_code == 400 and "not valid" in page(resp)
    stale = admin.post("/console/rules/save", {"text": text.replace("max_attempts: 3", "max_attempts: 4"),
                                               "reason": "r", "base_sha": "0" * 64})
    assert stale.status_code == 400 and "changed since you opened" in page(stale)
    assert hotline.rules.path.read_text() == text and not audit_rows(hotline, "rules.")


def test_the_rules_page_shows_when_the_file_on_disk_is_broken(as_role, hotline):
    hotline.rules.path.write_text("default_language: [\n")
    body = page(as_role("viewer").get("/console/rules"))
    assert "using the last good rules" in body and "not valid YAML" in body


# -- what is shown -----------------------------------------------------------------------------------------


def test_html_in_every_text_field_is_stored_as_sent_and_shown_escaped(as_role, app, hotline, place_call):
    admin = as_role("admin")
    with hotline.db.write() as conn:
        conn.execute(update(Incident).values(title=PAYLOAD, exposed=PAYLOAD))
        conn.execute(insert(Call).values(call_sid="CA" + "9" * 32, started_at=utcnow(), caller_masked=PAYLOAD[:32],
                                         language="en", outcome=PAYLOAD[:40], status="completed"))
        conn.execute(insert(CallEvent).values(call_sid="CA" + "9" * 32, step="menu#1.0", at=utcnow(),
                                              kind="menu_choice", digits="1", detail=PAYLOAD))
    announcements.create_version(hotline.db, lang="en", topic="advice", text=PAYLOAD, source="text", audio_=None,
                                 actor="test", publish=True, reason=PAYLOAD)
    admin.post("/console/briefing", {**{f: PAYLOAD for f in ("facts", "exposed", "caller_actions", "answers")},
                                     "publish": "yes", "reason": PAYLOAD}).close()
    admin.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes", "reason": PAYLOAD,
                                 "override": PAYLOAD}).close()
    with hotline.db.read() as conn:
        assert conn.execute(select(BriefingVersion.facts)).scalar() == PAYLOAD
        assert conn.execute(select(AuditEntry.reason).where(AuditEntry.action == "mode.set")).scalar() == PAYLOAD
    bad_yaml = hotline.rules.path.read_text() + f"\n'{PAYLOAD}': 1\n"
    pages = {
        "dashboard": admin.get("/console/"), "live": admin.get("/console/live"),
        "announcements": admin.get("/console/announcements"), "briefing": admin.get("/console/briefing"),
        "calls": admin.get("/console/calls"), "audit": admin.get("/console/audit"),
        "audit filtered": admin.get("/console/audit", query_string={"action": PAYLOAD, "actor": PAYLOAD}),
        "rules check": admin.post("/console/rules/validate", {"text": bad_yaml}),
        "sign in": Console(app).login(PAYLOAD, PAYLOAD),
        "sign in next": Console(app).get("/console/login", query_string={"next": PAYLOAD}),
        "forbidden": as_role("viewer").post("/console/mode", {"reason": PAYLOAD}),
    }
    bodies = {name: page(resp) for name, resp in pages.items()}
    for name, body in bodies.items():
        assert PAYLOAD not in body and "<script>alert" not in body and "<img src=x" not in body, name
    for name in ("dashboard", "announcements", "briefing", "calls", "audit", "sign in"):
        assert ESCAPED in bodies[name], name


def test_the_dashboard_shows_mode_incident_calls_charts_and_queues(as_role, hotline, place_call):
    for keys in (["1"], ["2"], ["1", "9"]):
        place_call(keys=keys)
    body = page(as_role("viewer").get("/console/"))
    assert "The hotline is in <strong>message</strong> mode" in body
    assert "Security incident" in body and "severity: high" in body
    assert '<span class="stat-n" id="calls-last-hour">3</span>' in body
    assert "Calls per 5 minutes" in body and body.count('class="bar"') >= 2 * (24 + 24 + 2)
    assert "<title>details: 2</title>" in body and "<title>advice: 1</title>" in body
    assert "Callers waiting for an agent" in body and "Callbacks owed" in body
    assert 'id="mode-switch"' not in body  # a viewer reads; only ops and admins get the switch
    assert 'id="mode-switch"' in page(as_role("ops").get("/console/"))


def test_abandoned_calls_are_counted(as_role, hotline):
    now = utcnow()
    with hotline.db.write() as conn:
        for i, (outcome, status) in enumerate([("listening", "completed"), ("queued", "completed"),
                                               ("ended-by-caller", "completed"), ("listening", None)]):
            conn.execute(insert(Call).values(call_sid=f"CA{i:032d}", started_at=now, outcome=outcome, status=status))
    body = page(as_role("viewer").get("/console/live"))
    assert "2 of 4 calls in 24 hours abandoned" in body and '<span class="stat-n">50%</span>' in body
    assert '<span class="stat-n" id="calls-in-progress">1</span>' in body


def test_calls_show_the_masked_caller_and_path_and_export_a_timeline(as_role, hotline, place_call):
    call = place_call(keys=["1", "2", "9"])
    viewer = as_role("viewer")
    body = page(viewer.get("/console/calls"))
    assert "***0123" in body and "+15555550123" not in body
    assert "<li>1 details</li><li>2 advice</li><li>9 repeat</li>" in body
    resp = viewer.get("/console/calls.csv")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(page(resp))))
    assert [r["call_sid"] for r in rows] == [call.call_sid]
    assert rows[0]["incident_severity"] == "high" and rows[0]["language"] == "en"
    assert rows[0]["path"].startswith("start (message) > 1 details > 2 advice > 9 repeat")
    assert rows[0]["caller_masked"] == "***0123" and rows[0]["sms_reference"] == ""
    assert "5550123" not in page(viewer.get("/console/calls.csv"))
    texted = place_call(keys=["4"], caller="+12025550147")
    rows = {r["call_sid"]: r for r in csv.DictReader(io.StringIO(page(viewer.get("/console/calls.csv"))))}
    assert rows[texted.call_sid]["caller_masked"] == "***0147"
    assert rows[texted.call_sid]["sms_reference"] == reference(texted.call_sid)
    assert page(viewer.get("/console/calls.csv", query_string={"to": "2000-01-01"})).count("\n") == 1
    bad = viewer.get("/console/calls", query_string={"from": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in page(bad)


def test_the_audit_log_filters_and_exports_csv_safe_for_spreadsheets(as_role, hotline):
    ops = as_role("ops")
    ops.post("/console/mode", {"mode": "live", "expected": "message", "confirm": "yes",
                               "reason": "=HYPERLINK(\"http://evil\")", "override": "a test"}).close()
    viewer = as_role("viewer")
    body = page(viewer.get("/console/audit", query_string={"action": "mode", "actor": "otto"}))
    assert "<code>mode.set</code>" in body and "<code>announcement.seed</code>" not in body
    assert "<code>mode.set</code>" not in page(viewer.get("/console/audit", query_string={"actor": "ada"}))
    assert "<code>mode.set</code>" not in page(viewer.get("/console/audit", query_string={"to": "2000-01-01"}))
    rows = list(csv.reader(io.StringIO(page(viewer.get("/console/audit.csv", query_string={"action": "mode."})))))
    assert rows[0] == ["at", "actor", "action", "subject", "from", "to", "reason"]
    assert rows[1][1:] == ["otto", "mode.set", "hotline", "message", "live", "'=HYPERLINK(\"http://evil\")"]


@pytest.mark.parametrize("export", ["/console/calls.csv", "/console/audit.csv"])
def test_a_csv_export_with_a_bad_filter_is_a_page_that_says_why_not_a_file(as_role, export):
    resp = as_role("viewer").get(export, query_string={"from": "yesterday"})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert "Bad filter" in page(resp) and "YYYY-MM-DD" in page(resp)


TRICKS = [" =HYPERLINK(\"http://evil\")", "\t=1+2", "\r=1+2", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
          "fine\n=HYPERLINK(\"http://evil\")", "fine;=1+2", "fine,@SUM(A1)", '=1+2";=1+2', "\uff1d1+1",
          # hidden behind what a reader does not see or an importer strips: zero-width, BOM, marks, quotes
          "\u200b=1+2", "\ufeff=1+2", "\"=1+2", "'=1+2", "\u200b+1+2", "\ufeff-2+3", "\"@SUM(A1)", "\u2060\t=1",
          "\u200e\r=1", "\u00ad=1", "fine;\u200b=1+2", "\u201c=1+2"]


def test_csv_exports_neutralise_formulas_at_the_start_after_spaces_and_inside_cells(as_role, hotline):
    with hotline.db.write() as conn:
        for n, trick in enumerate(TRICKS):
            conn.execute(insert(AuditEntry).values(at=utcnow(), actor="otto", action=f"test.{n}", subject="x",
                                                   reason=trick))
        conn.execute(insert(AuditEntry).values(at=utcnow(), actor="otto", action="test.plain", subject="x",
                                               reason="a - b, as planned"))
    raw = page(as_role("viewer").get("/console/audit.csv", query_string={"action": "test."}))
    rows = {r[2]: r[6] for r in csv.reader(io.StringIO(raw))}
    for n, trick in enumerate(TRICKS):
        assert rows[f"test.{n}"] == "'" + trick, trick
    assert rows["test.plain"] == "a - b, as planned"  # ordinary text is left alone
    assert raw.splitlines()[0] == '"at","actor","action","subject","from","to","reason"'  # every cell quoted


def test_the_live_partial_holds_no_form(as_role):
    assert "<form" not in page(as_role("admin").get("/console/live"))


def test_with_the_database_down_the_console_says_so_plainly(as_role, hotline):
    from ivr.store.db import Database

    ops = as_role("ops")
    alive, hotline.db = hotline.db, Database("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=1")
    try:
        switch = {"mode": "live", "expected": "message", "confirm": "yes", "reason": "r"}
        for resp in (ops.get("/console/"), ops.post("/console/mode", switch)):
            assert resp.status_code == 503 and "database cannot be reached" in page(resp)
    finally:
        hotline.db.dispose()
        hotline.db = alive
