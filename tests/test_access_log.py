"""The access log line `ivr serve` writes in text mode is gunicorn's own, byte for byte, however the request
looks: GunicornLogger builds it without gunicorn's costly gathering of every atom (ivr/ops/logs.py)."""
from __future__ import annotations

import base64
import io
import logging
import sys
from datetime import timedelta
from pathlib import Path

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
    """What `logger.access` writes into the access log file it was set up with."""
    path = Path(logger.cfg.accesslog)
    before = len(path.read_text(encoding="utf-8"))
    logger.access(resp, Request(), env, timedelta(microseconds=1234))
    for handler in logger.access_log.handlers:
        handler.flush()
    return path.read_text(encoding="utf-8")[before:]


@pytest.fixture
def logger(monkeypatch, tmp_path):
    """A gunicorn logger of the given kind writing its access log to a file of its own. gunicorn's loggers
    share logging's "gunicorn.access": one at a time, each closed before the next is made (and after)."""
    monkeypatch.setenv("IVR_LOG_FORMAT", "text")
    made = []

    def close():
        for handler in made.pop().access_log.handlers[:] if made else []:
            handler.close()

    def make(kind, name: str, **settings):
        close()
        # pytest listens to every logger that does not propagate, gunicorn's among them: a listener that
        # rightly takes the line through logging (tested below). Here, as under gunicorn, nobody else listens.
        monkeypatch.setattr(logging.getLogger("gunicorn.access"), "handlers", [])
        cfg = Config()
        cfg.set("accesslog", str(tmp_path / name))
        for key, value in settings.items():
            cfg.set(key, value)
        made.append(kind(cfg))
        return made[-1]

    yield make
    close()


@pytest.mark.parametrize("case", CASES)
def test_the_access_line_is_gunicorns_byte_for_byte(logger, monkeypatch, case):
    monkeypatch.setattr(glogging.Logger, "now", lambda self: "[07/Dec/2026:15:04:05 +0000]")  # one clock
    env, resp = CASES[case]
    expected = _line(logger(glogging.Logger, "stock.log"), resp, env)
    assert expected.startswith(env.get("REMOTE_ADDR", "-") + " - ")  # the stock logger really wrote a line
    ours = logger(GunicornLogger, "ours.log")
    assert ours._gunicorns_own_access_handler() is not None  # the short way, past logging's record
    assert _line(ours, resp, env) == expected


def test_the_line_goes_to_the_file_gunicorn_reopens_on_usr1(logger, tmp_path):
    ours = logger(GunicornLogger, "ours.log")
    first = _line(ours, Response(), environ())
    (tmp_path / "ours.log").rename(tmp_path / "ours.log.1")  # logrotate, then USR1
    ours.reopen_files()
    assert _line(ours, Response(), environ(REMOTE_ADDR="10.0.0.8")) == first.replace("10.0.0.7", "10.0.0.8")
    assert (tmp_path / "ours.log.1").read_text() == first


def test_a_filter_or_another_handler_gets_the_line_through_logging(logger):
    ours = logger(GunicornLogger, "ours.log")
    expected = _line(ours, Response(), environ())
    seen = []
    ours.access_log.addFilter(lambda record: seen.append(record.getMessage()) or True)
    assert _line(ours, Response(), environ()) == expected and seen == [expected.rstrip("\n")]
    ours.access_log.filters.clear()
    extra = logging.StreamHandler(io.StringIO())
    ours.access_log.addHandler(extra)
    assert _line(ours, Response(), environ()) == expected and extra.stream.getvalue() == expected
    ours.access_log.removeHandler(extra)
    extra.close()
    ours.access_log.handlers[0].addFilter(lambda record: False)  # logging's rules hold: it drops the line
    assert _line(ours, Response(), environ()) == ""


def test_an_operators_own_format_is_gunicorns_to_write(logger):
    ours = logger(GunicornLogger, "ours.log", access_log_format='%(h)s %(r)s %({x-twilio-signature}i)s %(D)s')
    assert ours.cfg.access_log_format != COMMON_FORMAT
    assert _line(ours, Response(), environ()) == '10.0.0.7 POST /voice/incoming HTTP/1.1 - 1234\n'


def test_no_line_when_the_access_log_is_off(monkeypatch):
    monkeypatch.setenv("IVR_LOG_FORMAT", "text")
    written = []
    ours = GunicornLogger(Config())  # gunicorn's default: no access log
    monkeypatch.setattr(ours.access_log, "handle", written.append)  # where any record would go
    assert not ours.access_log_enabled and ours._gunicorns_own_access_handler() is None
    ours.access(Response(), Request(), environ(), timedelta(microseconds=1234))
    assert written == []
