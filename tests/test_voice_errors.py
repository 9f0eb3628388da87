"""Every error answer under /voice/ is TwiML: a signed request Twilio could send gets 200 and the safe reply
(only that keeps the caller on the line, see webhooks/errors.py); an unsigned one still gets 403."""
from __future__ import annotations

import pytest
import requests
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN
from helpers import parse_twiml, signed_post, twilio_params

SAFE = "We are having technical difficulties"


def said(resp) -> str:
    return " ".join(s.text or "" for s in parse_twiml(resp).iter("Say"))


def signature(url: str, params: dict | None = None) -> dict:
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params or {})}


def test_a_signed_request_over_the_body_limit_gets_twiml_and_an_unsigned_one_403(app):
    client, big = app.test_client(), twilio_params(Junk="x" * 100_000)
    assert SAFE in said(signed_post(client, "/voice/incoming", big))
    assert client.post("/voice/incoming", data=big).status_code == 403


def test_a_signed_request_to_a_voice_url_that_does_not_exist_gets_the_safe_reply(app):
    client = app.test_client()
    resp = signed_post(client, "/voice/no-such-step?l=en", twilio_params())
    assert SAFE in said(resp) and parse_twiml(resp).find("Gather") is not None  # the menu: still on the line
    assert client.post("/voice/no-such-step", data=twilio_params()).status_code == 403
    forged = signed_post(client, "/voice/no-such-step", twilio_params(), token="not-our-token")
    assert forged.status_code == 403


def test_a_signed_request_with_a_method_a_voice_route_does_not_take_gets_twiml(app):
    client = app.test_client()
    resp = client.delete("/voice/incoming", headers=signature("http://localhost/voice/incoming"))
    assert SAFE in said(resp)
    assert client.delete("/voice/incoming").status_code == 403


def test_a_failure_outside_the_views_is_answered_in_twiml_too(app):
    """An exception before the view runs (here: a hook) is a 500 anywhere else."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: Flask's 500 path, not the test's

    @app.before_request
    def _broken_hook():
        raise RuntimeError("a fault outside the voice views")

    client = app.test_client()
    assert SAFE in said(signed_post(client, "/voice/incoming", twilio_params()))
    assert client.post("/voice/incoming", data=twilio_params()).status_code == 403
    assert client.get("/healthz").status_code == 500  # elsewhere an error stays an error


@pytest.mark.slow
def test_through_ivr_serve_an_oversized_or_lost_voice_request_gets_twiml(server):
    srv = server()
    big = twilio_params(Junk="x" * 100_000)
    for path, params in (("/voice/incoming", big), ("/voice/no-such-step", twilio_params())):
        resp = requests.post(srv.url + path, data=params, headers=signature(srv.url + path, params), timeout=30)
        assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/xml"), resp.text[:200]
        assert SAFE in resp.text and "<Gather" in resp.text
        assert requests.post(srv.url + path, data=params, timeout=30).status_code == 403
