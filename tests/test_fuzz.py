"""Junk in, valid TwiML out: every voice route answers any signed input with 200 and a TwiML document."""
from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN
from helpers import parse_twiml, signed_post, twilio_params
from ivr.store.models import Call, CallEvent

ROUTES = ["/voice/incoming", "/voice/menu", "/voice/language", "/voice/hold", "/voice/queue-result",
          "/voice/status", "/voice/fallback"]
junk = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
params_junk = st.dictionaries(st.sampled_from(["Digits", "CallSid", "From", "To", "CallStatus", "QueueResult",
                                               "CallDuration", "SequenceNumber", "SpeechResult", "Extra"]),
                              junk, max_size=6)
query_junk = st.dictionaries(st.sampled_from(["l", "a", "s", "x"]), junk, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), params=params_junk, query=query_junk,
       digits=st.one_of(st.none(), st.text("0123456789*#", max_size=200)))
def test_voice_routes_answer_junk_with_valid_twiml(app, route, params, query, digits):
    body = twilio_params(**params)
    if digits is not None:
        body["Digits"] = digits
    url = route + ("?" + urlencode(query) if query else "")
    parse_twiml(signed_post(app.test_client(), url, body, sign_url="http://localhost" + url))


def test_a_body_that_is_not_utf8_gets_valid_twiml(app):
    raw = b"CallSid=CA" + b"4" * 32 + b"&From=%FF%FE%FA&Digits=%C3%28&CallStatus=in-progress"
    # Sign what the server reads (Werkzeug keeps undecodable escapes as they were); Twilio itself sends UTF-8.
    as_read = {"CallSid": "CA" + "4" * 32, "From": "%FF%FE%FA", "Digits": "%C3(", "CallStatus": "in-progress"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature("http://localhost/voice/menu", as_read)
    resp = app.test_client().post("/voice/menu", data=raw, content_type="application/x-www-form-urlencoded",
                                  headers={"X-Twilio-Signature": signature})
    doc = parse_twiml(resp)
    assert any("not one of the options" in (el.text or "") for el in doc.iter("Say"))


def test_missing_parameters_still_get_a_call_served(app):
    doc = parse_twiml(signed_post(app.test_client(), "/voice/incoming", {}))
    assert doc.find("Gather") is not None


def test_a_nul_character_from_twilio_is_recorded_without_blocking_the_writer(app, hotline):
    """PostgreSQL text cannot hold NUL: one such record used to fail its whole batch on every retry, so no
    call was recorded any more. It is written without the NUL, and the calls around it are written too."""
    client = app.test_client()
    odd, plain = "CA" + "7" * 32, "CA" + "8" * 32
    parse_twiml(signed_post(client, "/voice/incoming", twilio_params(odd, From="+1555\x000123")))
    parse_twiml(signed_post(client, "/voice/menu?s=1", twilio_params(odd, Digits="4\x002"),
                            sign_url="http://localhost/voice/menu?s=1"))
    parse_twiml(signed_post(client, "/voice/status", twilio_params(odd, CallStatus="comp\x00leted")))
    parse_twiml(signed_post(client, "/voice/incoming", twilio_params(plain)))
    hotline.recorder.flush()
    with hotline.db.read() as conn:
        calls = dict(conn.execute(select(Call.call_sid, Call.caller_masked)).all())
        digits = conn.execute(select(CallEvent.digits).where(CallEvent.call_sid == odd,
                                                             CallEvent.kind == "invalid")).scalars().all()
    assert set(calls) == {odd, plain}
    assert "\x00" not in (calls[odd] or "")
    assert digits == ["42"]
