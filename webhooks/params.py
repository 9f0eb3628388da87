"""Twilio's request parameters, parsed once per webhook.

Werkzeug's `request.form`/`request.values` are built for any kind of request; a Twilio webhook is one small
urlencoded body. This parses it the way Werkzeug does (strict UTF-8 for the body, `keep_blank_values`,
undecodable percent-escapes kept as written) into plain dicts, once, and hands RequestValidator a mapping it
reads without the exception-driven lookups it needs for a MultiDict. It reads the query string, the content
type and a Content-Length body straight from the WSGI environ (each `request.*` lookup through Flask's proxy
costs microseconds, and Werkzeug's limited input stream more; docs/performance.md).

The body is read here and not kept for Werkzeug: voice routes read their parameters through
`twilio_params()` only, never `request.form` or `request.values`.
"""
from __future__ import annotations

from urllib.parse import unquote, unquote_to_bytes

import werkzeug.urls  # noqa: F401  registers the "werkzeug.url_quote" error handler used below
from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge

# Registered by Werkzeug on import: undecodable %-escapes stay as they were written (%FF stays "%FF").
ERRORS = "werkzeug.url_quote"
FORM_TYPE = "application/x-www-form-urlencoded"


class MultiValues(dict):
    """name -> list of values; `getall` is the first thing RequestValidator tries."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _decode(part: str) -> str:
    """`unquote(part, errors=ERRORS)`, in one pass over the bytes rather than one per run of ASCII (half
    the time for Twilio's "%2B1555..."): an escape never joins a character written out in full, since
    UTF-8 starts every character with a byte that cannot continue another, so the same bytes are kept as
    written (tests/test_params.py)."""
    if "+" in part:
        part = part.replace("+", " ")
    if "%" not in part:
        return part
    try:
        return unquote_to_bytes(part).decode("utf-8", ERRORS)
    except UnicodeEncodeError:  # a lone surrogate (never from a socket): the standard library's way
        return unquote(part, errors=ERRORS)


def parse_urlencoded(text: str) -> MultiValues:
    """`a=1&b=%2B1&c` -> {"a": ["1"], "b": ["+1"], "c": [""]}, like urllib's parse_qsl(keep_blank_values=True)."""
    out = MultiValues()
    if not text:
        return out
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name, value = _decode(name), _decode(value)
        values = out.get(name)
        if values is None:
            out[name] = [value]
        else:
            values.append(value)
    return out


class TwilioParams:
    """The parameters of one webhook request: Twilio's form body and our own query string."""

    __slots__ = ("form", "args")

    def __init__(self, form: MultiValues, args: MultiValues):
        self.form, self.args = form, args

    def get(self, name: str, default: str | None = None) -> str | None:
        """Like `request.values.get`: the query string first, then the form."""
        values = self.args.get(name) or self.form.get(name)
        return values[0] if values else default

    def form_get(self, name: str, default: str | None = None) -> str | None:
        values = self.form.get(name)
        return values[0] if values else default

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.args.get(name)
        return values[0] if values else default


def twilio_params(request: Request) -> TwilioParams:
    """Parse once per request (kept in the WSGI environ); the body limit of the request still applies.

    `request`: the request object itself (`request._get_current_object()` in a view), or Flask's proxy.
    """
    env = request.environ
    params = env.get("ivr.params")
    if params is None:
        form = MultiValues()
        if env.get("REQUEST_METHOD") == "POST":
            mimetype = _mimetype(env)
            if mimetype == FORM_TYPE:
                form = _form(_body(request, env))
            elif mimetype:
                form = MultiValues((k, request.form.getlist(k)) for k in request.form)
        params = env["ivr.params"] = TwilioParams(form, _args(env))
    return params


def is_plain(env: dict, limit: int) -> bool:
    """Is this a request as Twilio sends it, which plain_params() reads from the WSGI environ alone
    (webhooks/direct.py)? A GET, or a POST of an urlencoded body (or none) with a Content-Length within
    `limit`. Anything else (chunked, no length, too large, another content type) is Flask's to answer."""
    if env.get("REQUEST_METHOD") != "POST":
        return True
    length = env.get("CONTENT_LENGTH", "")
    return (_mimetype(env) in (FORM_TYPE, "") and length.isascii() and length.isdigit() and int(length) <= limit
            and env.get("HTTP_TRANSFER_ENCODING", "").lower() != "chunked")


def plain_params(env: dict) -> TwilioParams:
    """The parameters of a plain request (is_plain), parsed once (kept in the WSGI environ)."""
    form = MultiValues()
    if env.get("REQUEST_METHOD") == "POST" and _mimetype(env):
        form = _form(_read(env["wsgi.input"], int(env["CONTENT_LENGTH"])))
    params = env["ivr.params"] = TwilioParams(form, _args(env))
    return params


def _mimetype(env: dict) -> str:
    return env.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()


def _args(env: dict) -> MultiValues:
    return parse_urlencoded(env.get("QUERY_STRING", ""))  # WSGI gives it latin-1 decoded, as Werkzeug reads it


def _form(body: bytes) -> MultiValues:
    try:
        return parse_urlencoded(body.decode())
    except UnicodeDecodeError:
        return MultiValues()  # Werkzeug gives an empty form for a body that is not UTF-8


def raw_query(env: dict) -> str:
    """The query string as the client sent it (UTF-8; Werkzeug's `request.query_string`, decoded)."""
    return env.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")


def _body(request: Request, env: dict) -> bytes:
    """The request body. A plain Content-Length body (what Twilio sends) is read directly; anything else
    (chunked, no length) goes through Werkzeug's guarded stream. Over the request's limit: 413, as Werkzeug."""
    length = env.get("CONTENT_LENGTH", "")
    limit = request.max_content_length
    if not (length.isascii() and length.isdigit()) or env.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        data = request.get_data(cache=True)
        # Werkzeug cuts a streamed body at the limit without a word; what is past it means: too large.
        if limit is not None and len(data) >= limit and env.get("wsgi.input_terminated") and env["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
        return data
    if limit is not None and int(length) > limit:
        raise RequestEntityTooLarge()
    return _read(env["wsgi.input"], int(length))


def _read(stream, remaining: int) -> bytes:
    """A Content-Length body, straight from the WSGI input."""
    chunks = []
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break  # the client sent less than it announced: the signature is checked against what came
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
