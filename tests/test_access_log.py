"""The access log line `ivr serve` writes in text mode is gunicorn's own, byte for byte, however the request
looks: GunicornLogger builds it without gunicorn's costly gathering of every atom (ivr/ops/logs.py)."""
from __future__ import annotations

import base64
import io
import logging
import sys
from datetime import timedelta

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from ivr.ops.logs import COMMON_FORMAT, GunicornLogger


class Response:
    def __init__(self, status="200 OK", sent=312):
        self.status, self.sent = status, sent
        self.headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(sent))]


class Request:
    headers = [("HOST", "127.0.0.1:8000"), ("USER-AGENT", "TwilioProxy/1.1")]


def environ(**changes) -> dict:
    env = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/voice/incoming",
           "RAW_URI": "/voice/incoming", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
           "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000", "HTTP_USER_AGENT": "TwilioProxy/1.1",
           "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "250",
           "REMOTE_ADDR": "10.0.0.7", "REMOTE_PORT": "40000", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not ...}


def _basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:secret".encode()).decode()


CASES = {
    "a caller's webhook": (environ(), Response()),
    "a query string, a percent sign": (environ(RAW_URI="/voice/menu?l=en&a=0&s=1&x=%25"), Response()),
    "quotes everywhere a client can put them": (
        environ(RAW_URI='/voice/"x"', HTTP_USER_AGENT='evil "agent"', HTTP_REFERER='http://"r"/',
                HTTP_AUTHORIZATION=_basic('ro"b')), Response()),
    "a named user": (environ(HTTP_AUTHORIZATION=_basic("dana")), Response()),
    "an authorization that is not Basic": (environ(HTTP_AUTHORIZATION="Bearer ivr_abc"), Response()),
    "broken Basic credentials": (environ(HTTP_AUTHORIZATION="Basic !!!"), Response()),
    "no address, no agent, no referer": (environ(REMOTE_ADDR=..., HTTP_USER_AGENT=...), Response()),
    "nothing sent": (environ(), Response("403 FORBIDDEN", sent=None)),
    "zero bytes": (environ(REQUEST_METHOD="HEAD"), Response("204 NO CONTENT", sent=0)),
    "a status as a number": (environ(), Response(502)),
    "text beyond ASCII": (environ(RAW_URI="/console/caf\u00e9", HTTP_USER_AGENT="K\u00f6nig"), Response()),
}


def _line(logger, resp, env) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.access_log.handlers[:] = [handler]
    logger.access(resp, Request(), env, timedelta(microseconds=1234))
    return out.getvalue()


@pytest.fixture
def loggers(monkeypatch):
    monkeypatch.setenv("IVR_LOG_FORMAT", "text")
    cfg = Config()
    cfg.set("accesslog", "-")
    return glogging.Logger(cfg), GunicornLogger(cfg)


@pytest.mark.parametrize("case", CASES)
def test_the_access_line_is_gunicorns_byte_for_byte(loggers, monkeypatch, case):
    stock, ours = loggers
    monkeypatch.setattr(glogging.Logger, "now", lambda self: "[07/Dec/2026:15:04:05 +0000]")  # one clock
    env, resp = CASES[case]
    expected = _line(stock, resp, env)
    assert expected.startswith(env.get("REMOTE_ADDR", "-") + " - ")  # the stock logger really wrote a line
    assert _line(ours, resp, env) == expected


def test_an_operators_own_format_is_gunicorns_to_write(monkeypatch):
    monkeypatch.setenv("IVR_LOG_FORMAT", "text")
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", '%(h)s %(r)s %({x-twilio-signature}i)s %(D)s')
    assert cfg.access_log_format != COMMON_FORMAT
    line = _line(GunicornLogger(cfg), Response(), environ())
    assert line == '10.0.0.7 POST /voice/incoming HTTP/1.1 - 1234\n'


def test_no_line_when_the_access_log_is_off(monkeypatch):
    monkeypatch.setenv("IVR_LOG_FORMAT", "text")
    ours = GunicornLogger(Config())  # gunicorn's default: no access log
    assert not ours.access_log_enabled
    assert _line(ours, Response(), environ()) == ""
