"""A callback is promised only to a number that can be called back, and one number has one callback owed: a
second request refreshes the first, and the caller hears that it did."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from ivr.ops.cli import main
from ivr.store import queues, sealed
from ivr.store.models import Callback
from ivr.store.users import add_user, create_token
from ivr.tools.simulate import HttpTransport, SimulatedCall
from conftest import AUTH_TOKEN
from helpers import at_once, parse_twiml, signed_post, twilio_params, wait_for

REFRESHED = "Thank you. We already had your request for a call back, and we have updated it"
CONFIRMED = "Thank you. We will call you back at the number you are calling from"


def _callbacks(hotline) -> list:
    """Every callback row, its number opened (numbers are stored sealed: ivr/store/sealed.py)."""
    with hotline.db.read() as conn:
        rows = conn.execute(select(Callback.call_sid, Callback.number, Callback.status, Callback.priority,
                                   Callback.queue, Callback.requested_at).order_by(Callback.id)).all()
    return [SimpleNamespace(**{**row._asdict(), "number": sealed.open_number(hotline.db, row.number)})
            for row in rows]


def _ask_on_hold(client, call_sid: str, number: str, queue="general", priority=10):
    url = f"/voice/hold-choice?l=en&q={queue}&p={priority}"
    doc = parse_twiml(signed_post(client, url, twilio_params(call_sid, Digits="1", From=number),
                                  sign_url="http://localhost" + url))
    return " ".join(s.text or "" for s in doc.iter("Say"))


def test_a_second_request_from_one_number_refreshes_the_first_and_says_so(app, hotline):
    client = app.test_client()
    assert CONFIRMED in _ask_on_hold(client, "CA" + "a" * 32, "+12025550142")
    (first,) = wait_for(lambda: _callbacks(hotline))  # stored (at once, or from the spool)
    # Seconds later the same caller rings again, from the fraud line this time, and asks again.
    said = _ask_on_hold(client, "CA" + "b" * 32, "+1 202 555 0142", queue="fraud", priority=30)
    assert REFRESHED in said and CONFIRMED not in said
    owed = wait_for(lambda: next((c for c in _callbacks(hotline) if c.queue == "fraud"), None))
    assert len(_callbacks(hotline)) == 1  # still one: agents call this number once
    assert (owed.call_sid, owed.number, owed.status) == (first.call_sid, "+12025550142", "waiting")
    assert (owed.queue, owed.priority) == ("fraud", 30) and owed.requested_at == first.requested_at
    # Another number is another callback; once the first is closed, the number may ask anew.
    assert CONFIRMED in _ask_on_hold(client, "CA" + "c" * 32, "+12025550143")
    queues.callback_done(hotline.db, owed_id(hotline, "+12025550142"), actor="test", note="called")
    assert CONFIRMED in _ask_on_hold(client, "CA" + "d" * 32, "+12025550142")
    assert wait_for(lambda: [c.status for c in _callbacks(hotline)] == ["done", "waiting", "waiting"])


def owed_id(hotline, number: str) -> int:
    return queues.open_callback_for(hotline.db, hotline.caller_identity(number)[0])["id"]


def _book(hotline, number: str, **fields) -> dict:
    """What a callback request carries for the store: the number and its keyed hash (what finds it again)."""
    return dict(fields, number=number, number_hash=hotline.caller_identity(number)[0])


def test_the_store_keeps_one_open_callback_per_number_whoever_writes_it(hotline):
    fields = dict(language="en", queue="general", priority=10, reason="callback offered")
    book = _book(hotline, "+12025550150", **fields)
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, **book)
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, **book)  # a replay of the same request
    queues.request_callback(hotline.db, call_sid="CA" + "3" * 32, **_book(hotline, "+1 (202) 555-0150", **fields))
    queues.request_callback(hotline.db, call_sid="CA" + "2" * 32, **{**book, "language": "es"})
    (owed,) = _callbacks(hotline)
    assert owed.call_sid == "CA" + "1" * 32
    assert queues.open_callback_for(hotline.db, book["number_hash"])["language"] == "es"
    # Eight workers booking for one new number at the same moment: one callback is owed.
    book = _book(hotline, "+12025550151", **fields)
    at_once(lambda name: queues.request_callback(hotline.db, call_sid=f"CA{name:0>32}", **book), 8)
    assert [c.number for c in _callbacks(hotline)] == ["+12025550150", "+12025550151"]


def test_a_number_that_cannot_be_called_back_is_offered_a_voicemail_not_a_callback(place_call, hotline):
    # '+15555550123' has the form of a number, but no such number exists: nobody could call it back.
    result = place_call(keys=["0", "1"], caller="+15555550123")
    said = result.said()
    assert "We cannot call you back: your number is withheld or cannot be called." in said
    assert not any(s.startswith(CONFIRMED) for s in said) and _callbacks(hotline) == []
    # The same keys from a real number book one.
    place_call(keys=["0", "1"], caller="+12025550123")
    assert [c.number for c in _callbacks(hotline)] == ["+12025550123"]


def test_ivr_simulates_a_caller_the_hotline_can_call_back(config, hotline):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TTS_ENGINES": "espeak"}
    result = CliRunner().invoke(main, ["simulate", "--keys", "0,1"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert CONFIRMED in result.output
    (owed,) = _callbacks(hotline)
    assert owed.status == "waiting" and owed.number.startswith("+1")


@pytest.mark.slow
def test_under_ivr_serve_one_number_gets_one_callback_and_an_invalid_one_none(server, hotline):
    srv = server(workers=2)

    def call(caller):
        return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["0", "1"], caller=caller).run().said()

    assert any(s.startswith(CONFIRMED) for s in call("+12025550160"))
    wait_for(lambda: _callbacks(hotline), timeout=30)  # stored (at once, or from the spool)
    assert any(s.startswith(REFRESHED) for s in call("+12025550160"))  # two workers, one callback owed
    assert "We cannot call you back: your number is withheld or cannot be called." in call("+15555550123")
    assert [(c.number, c.status) for c in _callbacks(hotline)] == [("+12025550160", "waiting")]
    # An out-of-range report filter is a 400 from the served API too, not a 500.
    add_user(hotline.db, "ada", "admin", actor="test")
    token = {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}
    resp = requests.get(srv.staff_url + "/api/reports", params={"since": "740000d"}, headers=token, timeout=30)
    assert resp.status_code == 400 and "at most 99,999h or 99,999d" in resp.json()["error"]
