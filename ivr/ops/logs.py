"""Logs: plain text by default; with IVR_LOG_FORMAT=json every line `ivr serve` writes is one JSON object.

That covers gunicorn's error and access logs (`GunicornLogger`, set in ivr/worker/gunicorn_conf.py), the app
in each worker (`register_logging`), `ivr background` and the banner of `ivr serve` (`configure`, `banner`).
Each object has time, level, process (master, worker, background, serve), pid, logger and message and,
where there is one: request_id, route, call_sid, status, client (the address the trusted proxy saw, see
IVR_TRUSTED_PROXIES), method, path, duration_ms. A traceback stays inside its object.
"""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone

from gunicorn import glogging

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
FIELDS = ("request_id", "route", "call_sid", "status", "client", "method", "path", "duration_ms", "bytes",
          "user_agent")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_role = "app"  # what this process is, when gunicorn's master pid does not say
_master_pid = 0  # set in gunicorn's master: its workers are the other pids


def process_role() -> str:
    if _master_pid:
        return "master" if os.getpid() == _master_pid else "worker"
    return _role


class JsonFormatter(logging.Formatter):
    """One record, one line of JSON; the traceback (if any) is a field, never lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "process": process_role(), "pid": record.process,
               "logger": record.name, "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def request_id(environ: dict) -> str:
    """The request's id: the proxy's X-Request-Id (nginx's $request_id) when it is sane, else a new one."""
    rid = environ.get("ivr.request_id")
    if rid is None:
        given = environ.get("HTTP_X_REQUEST_ID", "")
        rid = environ["ivr.request_id"] = given if _REQUEST_ID.match(given) else secrets.token_hex(16)
    return rid


def call_sid(environ: dict) -> str | None:
    """The CallSid of a Twilio webhook, if its parameters were parsed (a log line never parses a body)."""
    params = environ.get("ivr.params")
    return (params.form_get("CallSid") or params.arg("CallSid")) if params is not None else None


# The WSGI environ of a request answered outside Flask (webhooks/direct.py), for the records made meanwhile
_direct_request: ContextVar[dict | None] = ContextVar("direct_request", default=None)


@contextmanager
def in_request(environ: dict):
    """Records made inside this block belong to the request of `environ` (one answered without Flask)."""
    token = _direct_request.set(environ)
    try:
        yield
    finally:
        _direct_request.reset(token)


class _RequestContext(logging.Filter):
    """Adds the request's id, route, CallSid and client to the app's records made inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context, request

        environ = _direct_request.get()
        if environ is not None:
            record.route = environ.get("ivr.route")
        elif has_request_context():
            environ = request.environ
            record.route = request.url_rule.rule if request.url_rule is not None else None
        else:
            return True
        record.request_id = request_id(environ)
        record.call_sid = call_sid(environ)
        record.client = environ.get("REMOTE_ADDR")
        return True


class _CurrentStderr(logging.StreamHandler):
    """Writes to sys.stderr as it is when a record is emitted, as logging's own last resort does. A handler
    that kept the stream of the moment it was made writes into a closed one once that stream is replaced and
    closed: a CLI command run in-process (click's CliRunner) or a second pytest session in the same process
    (`make mutate`), where each record then came out as a "Logging error" with its arguments."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def _json_handler(stream=None) -> logging.Handler:
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_RequestContext())
    handler._ivr_json = True
    return handler


def configure(log_format: str, role: str) -> None:
    """Set up the root logger of a process that is not gunicorn's (the app, `ivr background`)."""
    global _role
    _role = role
    root = logging.getLogger()
    if log_format != "json":
        if not root.handlers:
            handler = _CurrentStderr()
            handler.setFormatter(logging.Formatter(TEXT_FORMAT))
            root.addHandler(handler)
            root.setLevel(logging.INFO)
        return
    if not any(getattr(h, "_ivr_json", False) for h in root.handlers):
        root.addHandler(_json_handler())
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # a warning is a record too, not a loose line on stderr

    def _uncaught(exc_type, exc, tb):
        logging.getLogger("ivr").critical("uncaught exception: %s", exc, exc_info=(exc_type, exc, tb))

    sys.excepthook = _uncaught
    threading.excepthook = lambda args: _uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    sys.unraisablehook = lambda u: logging.getLogger("ivr").error(  # e.g. an error in a __del__
        "%s: %s", u.err_msg or "exception ignored", u.exc_value,
        exc_info=(u.exc_type, u.exc_value, u.exc_traceback) if u.exc_type else None)


def register_logging(app, cfg) -> None:
    """The app's logging; in JSON mode, each request also leaves its route and id for the access log."""
    configure(cfg.log_format, "worker" if _master_pid else "app")
    if cfg.log_format != "json":
        return
    from flask import request

    @app.after_request
    def _tag_request(response):
        environ = request.environ
        environ["ivr.route"] = request.url_rule.rule if request.url_rule is not None else None
        response.headers["X-Request-Id"] = request_id(environ)
        return response


def banner(log_format: str, text: str) -> None:
    """What `ivr serve` says before gunicorn starts: the text, or one JSON object holding it."""
    if log_format != "json":
        print(text, flush=True)
        return
    record = logging.LogRecord("ivr.serve", logging.INFO, __file__, 0, text.strip(), None, None)
    global _role
    _role = "serve"
    print(JsonFormatter().format(record), flush=True)


# gunicorn's default access log format (its `access_log_format` setting), which `common_line` writes.
COMMON_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _atom(value):
    """A value as gunicorn's SafeAtoms hands it to the format: texts with their quotes escaped."""
    return value.replace('"', '\\"') if isinstance(value, str) else value


class GunicornLogger(glogging.Logger):
    """gunicorn's error and access logs, as JSON objects when IVR_LOG_FORMAT=json (else gunicorn's own)."""

    def __init__(self, cfg):
        from ivr.config import from_env

        global _master_pid
        self.json = from_env().log_format == "json"
        if self.json:
            _master_pid = os.getpid()
        super().__init__(cfg)

    def setup(self, cfg):
        super().setup(cfg)
        if self.json:
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(JsonFormatter())

    def _gunicorns_own_access_handler(self) -> logging.StreamHandler | None:
        """The access log's one handler when it is the one gunicorn made for `--access-logfile` (a stream or
        a file, the message alone, no filter, nothing else listening); else None: a syslog handler, a
        logging configuration or anything else gets its records through `logging` as usual. Asked at every
        line (0.2 µs): a handler or filter added while the server runs is obeyed from its first line."""
        log, handlers = self.access_log, self.access_log.handlers
        if len(handlers) != 1 or log.propagate or log.filters or not log.isEnabledFor(logging.INFO):
            return None
        handler = handlers[0]
        formatter = handler.formatter
        if (type(handler) not in (logging.StreamHandler, logging.FileHandler) or handler.filters
                or not getattr(handler, "_gunicorn", False) or type(formatter) is not logging.Formatter
                or formatter._fmt != self.access_fmt or not isinstance(formatter._style, logging.PercentStyle)):
            return None
        return handler

    def _write_access(self, line: str) -> None:
        """One access line: straight to gunicorn's own handler's stream, as its `emit` would write it (the
        stream looked up each time: a USR1 reopens the file under the same handler), without the record
        `logging` builds first (5 µs of the 7 that remained a request); through `logging` otherwise."""
        handler = self._gunicorns_own_access_handler()
        if handler is None:
            self.access_log.info(line)
            return
        with handler.lock:
            stream = handler.stream
            stream.write(line + handler.terminator)
            stream.flush()

    def access(self, resp, req, environ, request_time):
        if not self.json:
            if self.cfg.access_log_format != COMMON_FORMAT or self.atoms_wrapper_class is not glogging.SafeAtoms:
                return super().access(resp, req, environ, request_time)  # an operator's own format
            if self.access_log_enabled:
                try:
                    self._write_access(self.common_line(resp, environ))
                except Exception:
                    self.error_log.exception("could not write the access log line")
            return
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "-")
        fields = {"request_id": request_id(environ), "route": environ.get("ivr.route"),
                  "call_sid": call_sid(environ), "status": int(status), "client": environ.get("REMOTE_ADDR"),
                  "method": method, "path": path, "bytes": getattr(resp, "sent", None),
                  "duration_ms": round(request_time.total_seconds() * 1000, 1),
                  "user_agent": environ.get("HTTP_USER_AGENT")}
        try:
            self.access_log.info("%s %s %s", method, path, status, extra=fields)
        except Exception:
            self.error_log.exception("could not write the access log line")

    def common_line(self, resp, environ) -> str:
        """The access line gunicorn's own `access` writes in its default format, byte for byte
        (tests/test_access_log.py), in about 1 µs: gunicorn gathers every atom any format could ask for
        (each request header, response header and environ entry among them), wraps them for `%`-formatting
        and makes a `logging` record, about 20 µs a request in-process, more than the signature check."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        request = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
        return (f"{_atom(environ.get('REMOTE_ADDR', '-'))} - {_atom(self._get_user(environ) or '-')} "
                f"{_atom(self.now())} \"{_atom(request)}\" {_atom(status)} {sent is not None and str(sent) or '-'} "
                f"\"{_atom(environ.get('HTTP_REFERER', '-'))}\" \"{_atom(environ.get('HTTP_USER_AGENT', '-'))}\"")
