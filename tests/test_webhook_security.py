"""Only Twilio can drive the hotline: every /voice/* route refuses unsigned and forged requests with 403."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN
from helpers import parse_twiml, signed_post, twilio_params
from ivr.store.seed import DEFAULT_TEXTS

EN = DEFAULT_TEXTS["en"]

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


def test_oversized_bodies_are_not_read_and_get_the_safe_reply(app):
    resp = signed_post(app.test_client(), "/voice/incoming", twilio_params(Junk="x" * 200_000))
    assert "technical difficulties" in ET.tostring(parse_twiml(resp), encoding="unicode")  # 200 TwiML, not 413


# -- how the body is read: Twilio sends a Content-Length body; other framings must validate the same way --------
class _Trickle:
    """A WSGI input that hands out at most a few bytes per read, as a slow network may."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.step = data, step

    def read(self, n: int = -1) -> bytes:
        n = self.step if n is None or n < 0 else min(n, self.step)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def _raw_post(app, path: str, body: bytes, signature: str, **environ):
    """POST through the WSGI app with a hand-made environ: (status code, body)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    env = EnvironBuilder(path=path, method="POST", data=body, content_type="application/x-www-form-urlencoded",
                         headers={"X-Twilio-Signature": signature}).get_environ()
    for key, value in environ.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    app_iter, status, _headers = run_wsgi_app(app, env, buffered=True)
    return int(status.split()[0]), b"".join(app_iter)


def _signed_body(path: str, **params):
    from urllib.parse import urlencode

    params = twilio_params(**params)
    return urlencode(params).encode(), RequestValidator(AUTH_TOKEN).compute_signature("http://localhost" + path,
                                                                                       params)


def test_a_body_that_arrives_in_pieces_is_read_whole(app):
    body, signature = _signed_body("/voice/menu", Digits="2")
    status, answer = _raw_post(app, "/voice/menu", body, signature, **{"wsgi.input": _Trickle(body)})
    assert status == 200  # signed over every parameter: a body read in part would be refused
    assert next(ET.fromstring(answer).iter("Say")).text == EN["advice"]  # and the key pressed was read


def test_a_chunked_body_is_read_and_validated(app):
    import io

    body, signature = _signed_body("/voice/incoming")
    status, answer = _raw_post(app, "/voice/incoming", body, signature, CONTENT_LENGTH=None,
                               HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body),
                                                                    "wsgi.input_terminated": True})
    assert status == 200 and b"<Gather" in answer


def test_a_truncated_body_is_refused_as_unsigned(app):
    body, signature = _signed_body("/voice/incoming")
    status, _ = _raw_post(app, "/voice/incoming", body[: len(body) // 2], signature, CONTENT_LENGTH=str(len(body)))
    assert status == 403


def test_the_body_limit_holds_for_a_chunked_body(app):
    import io

    body, signature = _signed_body("/voice/incoming", Junk="x" * 200_000)
    status, answer = _raw_post(app, "/voice/incoming", body, signature, CONTENT_LENGTH=None,
                          HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(body),
                                                               "wsgi.input_terminated": True})
    assert status == 200 and b"technical difficulties" in answer  # refused unread, answered in TwiML


def test_every_twilio_route_refuses_the_unsigned_and_answers_the_signed_with_twiml(app):
    """Every route under /voice/ and /sms/ the app serves, read from its URL map so a new one cannot be
    forgotten."""
    routes = sorted({rule.rule for rule in app.url_map.iter_rules()
                     if rule.rule.startswith(("/voice/", "/sms/"))})
    assert {"/sms/status", "/sms/inbound"} <= set(routes)  # the notices' delivery reports and replies
    assert len(routes) >= 20  # the caller routes, both staff lines, the agent's callbacks
    client = app.test_client()
    for route in routes:
        assert client.post(route, data=twilio_params(Digits="1")).status_code == 403, route
        assert signed_post(client, route, twilio_params(Digits="1"), token="not-our-token").status_code == 403, route
        parse_twiml(signed_post(client, route, twilio_params(Digits="1")))
