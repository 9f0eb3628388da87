"""Revocation: a deactivated user or agent is out at once (console, API, phone); tokens expire and are revoked."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import console_sign_in, parse_twiml, signed_post, twilio_params
from ivr.store import agents, users
from ivr.store.models import ApiToken, AuditEntry, utcnow
from ivr.tools.simulate import FlaskTransport, SimulatedCall

PASSWORD = "correct horse battery staple"
ADMIN_PIN = "482916"


def sign_in(client, name, password=PASSWORD):
    return console_sign_in(client, name, password)


def last_audit(hotline, action):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.action == action)
                            .order_by(AuditEntry.id.desc())).first()


@pytest.fixture
def ada(hotline):
    users.add_user(hotline.db, "ada", "admin", actor="test", password=PASSWORD, phone_pin=ADMIN_PIN)
    return "ada"


def test_a_deactivated_user_is_out_of_console_api_and_phone_at_once(app, hotline, ada):
    console = app.test_client()
    assert sign_in(console, ada).status_code == 303
    assert console.get("/console/").status_code == 200
    bearer = {"Authorization": "Bearer " + users.create_token(hotline.db, ada, actor="test")}
    api = app.test_client()
    assert api.get("/api/mode", headers=bearer).status_code == 200

    users.deactivate_user(hotline.db, ada, actor="ciso", reason="laptop stolen")

    assert console.get("/console/").status_code == 303  # the open session is gone: back to sign-in
    assert sign_in(app.test_client(), ada).status_code == 401
    assert api.get("/api/mode", headers=bearer).status_code == 401
    call = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=[ADMIN_PIN]).run("/voice/admin")
    assert "That PIN is not right." in call.said()
    entry = last_audit(hotline, "user.deactivate")
    assert (entry.actor, entry.reason) == ("ciso", "laptop stolen")
    assert "1 session(s) ended, 1 token(s) revoked" in entry.to_value
    assert all(t["revoked_at"] for t in users.list_tokens(hotline.db, ada))

    users.reactivate_user(hotline.db, ada, actor="ciso", reason="laptop found")
    assert sign_in(app.test_client(), ada).status_code == 303
    assert api.get("/api/mode", headers=bearer).status_code == 401  # old tokens stay revoked
    assert last_audit(hotline, "user.reactivate").reason == "laptop found"


def test_deactivation_ends_an_admin_line_call_already_past_the_pin(app, hotline, ada):
    client = app.test_client()
    doc = parse_twiml(signed_post(client, "/voice/admin/pin", twilio_params(Digits=ADMIN_PIN)))
    next_url = doc.find("Gather").get("action")  # the language menu, bound to this call and admin
    users.deactivate_user(hotline.db, ada, actor="ciso", reason="left the company")
    path = urlsplit(next_url)
    doc = parse_twiml(signed_post(client, f"{path.path}?{path.query}", twilio_params(Digits="1"),
                                  sign_url=next_url if next_url.startswith("http") else None))
    assert doc.find("Say").text == "This session has expired. Goodbye." and doc.find("Hangup") is not None


def test_tokens_expire_and_are_revoked_and_listed_without_their_secret(app, hotline, ada):
    api = app.test_client()
    short = users.create_token(hotline.db, ada, actor="test", expires=timedelta(days=30), label="ci")
    forever = users.create_token(hotline.db, ada, actor="test")
    assert api.get("/api/mode", headers={"Authorization": "Bearer " + short}).status_code == 200
    with hotline.db.write() as conn:
        conn.execute(update(ApiToken).where(ApiToken.label == "ci").values(expires_at=utcnow() - timedelta(1)))
    assert api.get("/api/mode", headers={"Authorization": "Bearer " + short}).status_code == 401
    assert api.get("/api/mode", headers={"Authorization": "Bearer " + forever}).status_code == 200

    listed = users.list_tokens(hotline.db, ada)
    assert len(listed) == 2 and all(set(t) >= {"id", "user", "created_at", "last_used_at", "expires_at",
                                              "revoked_at"} for t in listed)
    assert {t["user"] for t in listed} == {ada} and all(t["last_used_at"] for t in listed)
    assert short not in repr(listed) and forever not in repr(listed)

    assert users.revoke_tokens(hotline.db, ada, actor="ciso", reason="rotation") == 2
    assert api.get("/api/mode", headers={"Authorization": "Bearer " + forever}).status_code == 401
    assert last_audit(hotline, "token.revoke").reason == "rotation"
    with pytest.raises(users.UserError, match="reason"):
        users.revoke_tokens(hotline.db, ada, actor="ciso", reason="  ")
    with pytest.raises(users.UserError, match="positive"):
        users.create_token(hotline.db, ada, actor="test", expires=timedelta(0))


def test_a_deactivated_agent_cannot_sign_in_and_is_let_go_mid_shift(app, hotline):
    phone = "+15555550500"
    agents.add_agent(hotline.db, hotline.config.secret_key, "alex", phone, "2468", actor="test")
    client = app.test_client()
    doc = parse_twiml(signed_post(client, "/voice/agent/pin", twilio_params(From=phone, Digits="2468")))
    next_url = doc.find("Redirect").text
    agents.deactivate_agent(hotline.db, "alex", actor="ops-lead", reason="shift over")
    doc = parse_twiml(signed_post(client, next_url, twilio_params(From=phone)))
    assert doc.find("Say").text == "This session has expired. Goodbye."
    call = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["2468"], caller=phone).run("/voice/agent")
    assert call.said() == ["This line is for our staff. Goodbye."]
    assert last_audit(hotline, "agent.deactivate").reason == "shift over"
    with pytest.raises(agents.AgentError, match="no active agent"):
        agents.deactivate_agent(hotline.db, "alex", actor="ops-lead", reason="again")
