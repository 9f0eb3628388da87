"""The caller's webhooks are answered in front of Flask (webhooks/direct.py): with the bytes Flask's view
gives (tests/test_caller_app_golden.py holds every route and key path to them), without Flask's machinery,
and everything the direct path does not take still reaches Flask and its answers."""
from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager
from dataclasses import replace

import pytest
from flask import request_started

from helpers import BASE, parse_twiml, signed_post, twilio_params
from ivr.app import create_app
from ivr.ops import logs
from webhooks.direct import DirectTwilioRoutes, check_hooks


@contextmanager
def flask_requests(app):
    """The paths Flask itself handled meanwhile (its request_started signal)."""
    seen = []

    def started(sender, **_kw):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    try:
        yield seen
    finally:
        request_started.disconnect(started, app)


@pytest.fixture(params=["all", "callers"])
def any_app(config, request):
    app = create_app(config, part=request.param)
    yield app
    app.extensions["ivr"].close()


def test_a_callers_step_is_answered_without_flask_and_a_staff_line_with_it(any_app):
    client = any_app.test_client()
    with flask_requests(any_app) as flask_saw:
        doc = parse_twiml(signed_post(client, "/voice/incoming", twilio_params()))
        assert doc.find("Gather") is not None  # the greeting and the menu
        parse_twiml(signed_post(client, "/voice/menu?l=en&a=0&s=1", twilio_params(Digits="1")))
        assert signed_post(client, "/voice/incoming", twilio_params(), sign_url=BASE + "/elsewhere").status_code == 403
        assert flask_saw == []
        if "admin_line.admin" in any_app.view_functions:  # the staff lines stay Flask views
            parse_twiml(signed_post(client, "/voice/admin", twilio_params()))
            assert flask_saw == ["/voice/admin"]


def test_every_caller_route_is_direct_and_only_those(any_app):
    direct = any_app.wsgi_app
    assert isinstance(direct, DirectTwilioRoutes)
    voice = {r.rule for r in any_app.url_map.iter_rules() if r.endpoint.startswith("voice.")}
    assert set(direct.routes) == voice and "/voice/incoming" in voice


def test_what_the_direct_path_does_not_take_reaches_flask_and_gets_its_answer(app, hotline):
    client = app.test_client()
    params = twilio_params()
    with flask_requests(app) as flask_saw:
        assert client.head("/voice/incoming").status_code == 403  # HEAD: Flask's, and unsigned
        # A body over the limit is not read: Flask's error handler gives the safe reply to a signed-looking one.
        big = signed_post(client, "/voice/incoming", {**params, "Pad": "x" * hotline.config.max_body_bytes})
        assert list(parse_twiml(big).iter("Say"))
        # Another content type: Werkzeug parses it, the signature holds, the caller is greeted as usual.
        multipart = signed_post(client, "/voice/incoming", params, content_type="multipart/form-data")
        assert parse_twiml(multipart).find("Gather") is not None
        assert list(parse_twiml(signed_post(client, "/voice/incoming/", params)).iter("Say"))  # a 404
    assert flask_saw == ["/voice/incoming"] * 3 + ["/voice/incoming/"]


@pytest.mark.parametrize("register", ["before_request", "after_request", "teardown_request", "teardown_appcontext",
                                      "url_value_preprocessor"])
def test_an_app_wide_hook_the_direct_path_does_not_know_stops_the_app_at_start(app, register):
    check_hooks(app)  # the app as built: every hook known

    def count_visits(*_args):
        return _args[0] if register == "after_request" else None

    getattr(app, register)(count_visits)
    with pytest.raises(RuntimeError, match="count_visits.*webhooks/direct.py"):
        check_hooks(app)


def test_json_logs_name_the_request_of_a_direct_route(config):
    """IVR_LOG_FORMAT=json: the answer carries the request's id, and a line logged while answering names the
    request, its route, its CallSid and the client, as inside a Flask request."""
    app = create_app(replace(config, log_format="json"))
    out = io.StringIO()
    handler = logs._json_handler(out)
    logging.getLogger("webhooks.voice").addHandler(handler)
    try:
        client = app.test_client()
        resp = signed_post(client, "/voice/fallback", twilio_params("CA" + "7" * 32, ErrorCode="11200"),
                           environ_base={"HTTP_X_REQUEST_ID": "req-from-nginx"})
        parse_twiml(resp)
        assert resp.headers["X-Request-Id"] == "req-from-nginx"
        fresh = signed_post(client, "/voice/incoming", twilio_params())
        assert len(fresh.headers["X-Request-Id"]) == 32  # none given: one of its own
    finally:
        logging.getLogger("webhooks.voice").removeHandler(handler)
        app.extensions["ivr"].close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    called = [e for e in lines if "fallback URL called" in e["message"]]
    assert len(called) == 1
    assert {k: called[0].get(k) for k in ("request_id", "route", "call_sid", "client")} == {
        "request_id": "req-from-nginx", "route": "/voice/fallback", "call_sid": "CA" + "7" * 32,
        "client": "127.0.0.1"}


class _DroppedConnection:
    """A request body whose sender went away halfway (what gunicorn's reader raises then)."""

    def __init__(self, first: bytes):
        self.first = first

    def read(self, n: int = -1) -> bytes:
        if self.first:
            chunk, self.first = self.first, b""
            return chunk
        raise OSError("connection reset by peer")


@pytest.mark.parametrize("signature, answer", [("any", 200), (None, 403)])
def test_a_body_that_cannot_be_read_gets_the_safe_reply_or_a_403_never_a_500(app, signature, answer):
    """The direct path's own net: a failure before the route's answer (the body lost halfway) is answered
    as webhooks/errors.py answers one in Flask: TwiML to what claims to be Twilio, 403 to the rest."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    body = b"CallSid=CA" + b"1" * 32 + b"&From=%2B12025550123"
    env = EnvironBuilder(path="/voice/incoming", method="POST", content_type="application/x-www-form-urlencoded",
                         headers={"X-Twilio-Signature": signature} if signature else {}).get_environ()
    env.update({"wsgi.input": _DroppedConnection(body[:12]), "CONTENT_LENGTH": str(len(body))})
    with flask_requests(app) as flask_saw:
        app_iter, status, headers = run_wsgi_app(app, env, buffered=True)
    assert flask_saw == [] and int(status.split()[0]) == answer
    if answer == 200:
        assert headers["Content-Type"] == "text/xml; charset=utf-8"
        assert b"We are having technical difficulties" in b"".join(app_iter)
