"""Calls followed the way Twilio follows them: what the caller hears, where they end up, what is recorded."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from helpers import parse_twiml, signed_post, twilio_params
from ivr.store.models import Call, CallEvent
from ivr.store.seed import DEFAULT_TEXTS
from ivr.store.state import set_mode

EN, ES = DEFAULT_TEXTS["en"], DEFAULT_TEXTS["es"]
MENU_EN = "To hear what happened"


def events_of(hotline, call_sid):
    with hotline.db.read() as conn:
        return conn.execute(select(CallEvent.kind, CallEvent.digits, CallEvent.detail)
                            .where(CallEvent.call_sid == call_sid).order_by(CallEvent.id)).all()


def call_row(hotline, call_sid):
    with hotline.db.read() as conn:
        return conn.execute(select(Call).where(Call.call_sid == call_sid)).one()


def test_a_caller_hears_greeting_announcement_and_menu_interruptibly(place_call):
    result = place_call(keys=["9"])
    first = result.documents[0]
    gather = first.find("Gather")
    assert gather is not None, "the menu must be in a Gather"
    # Everything before the menu is inside the Gather: a caller can press a key during the announcement.
    said = [(el.text, el.get("language")) for el in gather.findall("Say")]
    assert said[0][0].startswith("Thank you for calling")
    # The other language offers itself in its own voice before the announcement, with one key.
    assert said[1] == ("Para español, oprima 3.", "es-US")
    assert said[2][0] == EN["main"]
    assert said[3][0].startswith(MENU_EN) and "español" not in said[3][0]
    assert gather.get("numDigits") == "1" and gather.get("input") == "dtmf"
    # With no key, the next verb sends the caller back to the menu: no dead end.
    assert first.find("Redirect") is not None
    # 9 repeats the announcement.
    assert result.said().count(EN["main"]) == 2


def test_details_and_advice_keys_speak_those_announcements(place_call):
    result = place_call(keys=["1", "2"])
    said = result.said()
    assert EN["details"] in said and EN["advice"] in said
    assert said.index(EN["details"]) < said.index(EN["advice"])


def test_silence_is_asked_again_then_a_polite_goodbye(place_call, hotline):
    result = place_call(keys=[])
    said = result.said()
    max_attempts = hotline.rules.rules.menu.max_attempts
    assert said.count("We did not hear a choice.") == max_attempts
    assert said[-1].endswith("Goodbye.")
    assert result.ended == "hangup"
    kinds = [e.kind for e in events_of(hotline, result.call_sid)]
    assert kinds.count("no_input") == max_attempts and kinds[-1] == "goodbye"
    assert call_row(hotline, result.call_sid).outcome == "ended-no-choice"


def test_invalid_keys_are_explained_and_counted(place_call, hotline):
    result = place_call(keys=["5", "6", "9"])
    said = result.said()
    assert said.count("Sorry, that is not one of the options.") == 2
    # A valid choice resets the count: after 9 the caller is still served.
    assert said.count(EN["main"]) == 2
    events = events_of(hotline, result.call_sid)
    assert [(e.kind, e.digits) for e in events[:3]] == [("call_started", None), ("invalid", "5"), ("invalid", "6")]


def test_spanish_holds_for_the_rest_of_the_call(place_call, hotline):
    result = place_call(keys=["3", "1", "2", "5"])
    said = result.said()
    i = said.index(ES["main"])
    press = result.heard.index(next(h for h in result.heard if h.kind == "press"))
    assert result.heard[press + 1].text == ES["main"]  # one key, and the Spanish announcement at once
    after = said[i:]
    assert ES["details"] in after and ES["advice"] in after
    assert "Lo sentimos, esa no es una de las opciones." in after
    assert not any(s in after for s in (EN["main"], EN["details"], "Sorry, that is not one of the options."))
    langs = {(h.lang, h.text == "For English, press 3.") for h in result.heard[result.heard.index(
        next(h for h in result.heard if h.text == ES["main"])):] if h.kind == "say"}
    assert langs == {("es-US", False), ("en-US", True)}  # English offers itself in its own voice
    assert call_row(hotline, result.call_sid).language == "es"


def test_agent_key_in_message_mode_explains_and_returns_to_the_menu(place_call, hotline):
    result = place_call(keys=["0", "9"])
    said = result.said()
    assert any(s.startswith("Our team is not taking calls") for s in said)
    assert said.count(EN["main"]) == 2  # still served after the explanation
    assert all(d.find("Enqueue") is None for d in result.documents)
    route = next(e for e in events_of(hotline, result.call_sid) if e.kind == "route")
    assert route.detail.startswith("callback by rule 'Nobody is taking calls in message mode")


def test_agent_key_in_live_mode_enqueues_with_a_hold_loop(place_call, hotline):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    result = place_call(keys=["0"])
    enqueue = result.documents[1].find("Enqueue")
    assert enqueue is not None and enqueue.text == "breach-general"
    assert enqueue.get("waitUrl").startswith("/voice/hold") and enqueue.get("action").startswith("/voice/queue-result")
    hold_doc = result.documents[2]
    # Only the verbs Twilio allows in a waitUrl document.
    assert {el.tag for el in hold_doc.iter()} <= {"Response", "Play", "Say", "Pause", "Gather", "Redirect", "Leave",
                                                  "Hangup"}
    said = [el.text for el in hold_doc.iter("Say")]
    assert said[0].startswith("Thank you for holding") and "You are number 1 in line." in said
    assert "We cannot estimate the wait yet." in said  # nobody answered yet: no figure is invented
    assert EN["advice"] in said  # the key facts, again
    assert said[-1].startswith("To get a call back instead, keeping your place")
    # Then the hold tone, inside the Gather (a key still works), and the document ends: Twilio asks again.
    assert [el.tag for el in hold_doc] == ["Gather"] and hold_doc[0][-1].tag == "Play"
    assert hold_doc[0][-1].text.endswith(f"/media/{hotline.hold_tone[1]}.wav")
    assert result.ended == "queued"
    assert call_row(hotline, result.call_sid).outcome == "queued"


def test_mode_change_takes_effect_on_the_very_next_call(place_call, hotline):
    assert place_call(keys=["0"]).ended != "queued"
    set_mode(hotline.db, "live", reason="go", actor="test")
    assert place_call(keys=["0"]).ended == "queued"
    set_mode(hotline.db, "message", reason="stop", actor="test")
    assert place_call(keys=["0"]).ended != "queued"


def test_queue_full_or_error_keeps_the_caller_served(app):
    client = app.test_client()
    for result in ("queue-full", "error", "system-error"):
        doc = parse_twiml(signed_post(client, "/voice/queue-result?l=en&a=0&s=3", twilio_params(QueueResult=result),
                                      sign_url="http://localhost/voice/queue-result?l=en&a=0&s=3"))
        says = [el.text for el in doc.iter("Say")]
        assert any("could not connect you" in s for s in says)
        assert doc.find("Gather") is not None


def test_every_step_is_recorded_once_by_callsid(place_call, hotline):
    result = place_call(keys=["1", "3", "0"])
    events = events_of(hotline, result.call_sid)
    assert [(e.kind, e.digits) for e in events] == [
        ("call_started", None), ("menu_choice", "1"), ("menu_choice", "3"), ("language", None),
        ("menu_choice", "0"), ("route", None), ("no_input", None), ("no_input", None), ("no_input", None),
        ("goodbye", None),
    ]
    row = call_row(hotline, result.call_sid)
    assert row.status == "completed" and row.duration_s > 0 and row.caller_masked == "***0123"
    assert row.caller_hash and "5555550123" not in row.caller_hash  # the number itself is never stored


def test_twilio_retrying_a_request_records_it_once(app, hotline):
    client = app.test_client()
    url = "/voice/menu?l=en&a=0&s=4"
    for _ in range(3):
        parse_twiml(signed_post(client, url, twilio_params(Digits="1"), sign_url="http://localhost" + url))
    hotline.recorder.flush()
    assert [e.kind for e in events_of(hotline, "CA" + "1" * 32)] == ["menu_choice"]


def test_status_callbacks_duplicated_or_out_of_order_do_not_corrupt(app, hotline):
    client = app.test_client()
    sid = "CA" + "2" * 32
    parse_twiml(signed_post(client, "/voice/incoming", twilio_params(sid, CallStatus="ringing")))
    for status, seq, duration in (("completed", 3, "42"), ("in-progress", 1, None), ("completed", 3, "42"),
                                  ("ringing", 0, None)):
        params = twilio_params(sid, CallStatus=status, SequenceNumber=str(seq))
        if duration:
            params["CallDuration"] = duration
        resp = signed_post(client, "/voice/status", params)
        assert resp.status_code == 200
    hotline.recorder.flush()
    row = call_row(hotline, sid)
    assert (row.status, row.duration_s) == ("completed", 42)
    with hotline.db.read() as conn:
        assert conn.execute(select(Call.call_sid).where(Call.call_sid == sid)).all() == [(sid,)]


def test_a_later_step_for_an_unknown_callsid_is_served_and_recorded(app, hotline):
    sid = "CA" + "3" * 32
    doc = parse_twiml(signed_post(app.test_client(), "/voice/menu?l=es&a=0&s=2", twilio_params(sid, Digits="2"),
                                  sign_url="http://localhost/voice/menu?l=es&a=0&s=2"))
    assert [el.text for el in doc.iter("Say")][0] == ES["advice"]
    hotline.recorder.flush()
    assert call_row(hotline, sid).call_sid == sid


@pytest.mark.parametrize("flush_between", [True, False])
def test_a_late_record_of_an_earlier_step_does_not_overwrite_the_calls_outcome(app, hotline, flush_between):
    client = app.test_client()
    sid = "CA" + "6" * 32

    def post(url, **params):
        parse_twiml(signed_post(client, url, twilio_params(sid, **params), sign_url="http://localhost" + url))

    post("/voice/menu?l=es&a=0&s=5", Digits="0")  # the newest step: a callback offered, in Spanish
    if flush_between:
        hotline.recorder.flush()
    post("/voice/menu?l=en&a=2&s=3")  # an older step arriving late: third silence, goodbye
    hotline.recorder.flush()
    row = call_row(hotline, sid)
    assert (row.outcome, row.language) == ("callback-offered", "es")
