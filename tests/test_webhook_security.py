"""Only Twilio can drive the hotline: every /voice/* route refuses unsigned and forged requests with 403."""
from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN
from helpers import parse_twiml, signed_post, twilio_params

ROUTES = ["/voice/incoming", "/voice/menu", "/voice/language", "/voice/hold", "/voice/queue-result",
          "/voice/status", "/voice/fallback"]


@pytest.mark.parametrize("route", ROUTES)
def test_unsigned_requests_are_refused(app, route):
    resp = app.test_client().post(route, data=twilio_params(Digits="1"))
    assert resp.status_code == 403


@pytest.mark.parametrize("route", ROUTES)
def test_requests_signed_with_another_token_are_refused(app, route):
    resp = signed_post(app.test_client(), route, twilio_params(Digits="1"), token="not-our-token")
    assert resp.status_code == 403


@pytest.mark.parametrize("route", ROUTES)
def test_signed_requests_are_answered_with_twiml(app, route):
    parse_twiml(signed_post(app.test_client(), route, twilio_params(Digits="1")))


def test_a_signature_for_another_url_is_refused(app):
    client = app.test_client()
    params = twilio_params(Digits="0")
    # A real signature, captured from a request to one URL, replayed to another.
    resp = signed_post(client, "/voice/menu", params, sign_url="http://localhost/voice/language")
    assert resp.status_code == 403
    # ... or with the call position in the query string changed.
    resp = signed_post(client, "/voice/menu?l=en&a=0&s=9", params, sign_url="http://localhost/voice/menu?l=en&a=0&s=1")
    assert resp.status_code == 403


def test_a_tampered_parameter_is_refused(app):
    params = twilio_params(Digits="1")
    signature = RequestValidator(AUTH_TOKEN).compute_signature("http://localhost/voice/menu", params)
    resp = app.test_client().post("/voice/menu", data={**params, "Digits": "0"},
                                  headers={"X-Twilio-Signature": signature})
    assert resp.status_code == 403


def test_get_requests_are_validated_on_their_query_string(app):
    client = app.test_client()
    validator = RequestValidator(AUTH_TOKEN)
    url = "/voice/incoming?CallSid=CA" + "5" * 32 + "&From=%2B15555550123"
    resp = client.get(url, headers={"X-Twilio-Signature": validator.compute_signature("http://localhost" + url, {})})
    parse_twiml(resp)
    resp = client.get(url.replace("0123", "0124"),
                      headers={"X-Twilio-Signature": validator.compute_signature("http://localhost" + url, {})})
    assert resp.status_code == 403


@pytest.fixture
def proxied_app(config):
    """The app behind a TLS-terminating proxy: Twilio calls https://hotline.example.com, we see http://localhost."""
    from ivr.app import create_app

    app = create_app(config.with_overrides(public_url="https://hotline.example.com"))
    yield app
    app.extensions["ivr"].close()


@pytest.mark.parametrize("public", ["https://hotline.example.com/voice/incoming",
                                    "https://hotline.example.com:443/voice/incoming"])
def test_behind_an_https_proxy_signatures_are_checked_against_the_public_url(proxied_app, public):
    doc = parse_twiml(signed_post(proxied_app.test_client(), "/voice/incoming", twilio_params(), sign_url=public))
    # The URLs we hand Twilio are public too, so its next requests are signed on the same base.
    assert doc.find("Gather").get("action").startswith("https://hotline.example.com/voice/menu?")


def test_behind_a_proxy_the_internal_url_is_not_accepted(proxied_app, app):
    params = twilio_params()
    assert signed_post(proxied_app.test_client(), "/voice/incoming", params).status_code == 403
    # Without IVR_PUBLIC_URL, the public URL's signature cannot match what the app sees.
    resp = signed_post(app.test_client(), "/voice/incoming", params,
                       sign_url="https://hotline.example.com/voice/incoming")
    assert resp.status_code == 403


def test_oversized_bodies_are_refused(app):
    resp = signed_post(app.test_client(), "/voice/incoming", twilio_params(Junk="x" * 200_000))
    assert resp.status_code == 413
