"""X-Twilio-Signature: every /voice/* request must be signed by Twilio with our account's auth token."""
from __future__ import annotations

import hmac

from flask import Request
from twilio.request_validator import RequestValidator
from werkzeug.wsgi import get_host

from webhooks.params import raw_query, twilio_params


def signed_url(env: dict, public_url: str = "") -> str:
    """The URL Twilio requested: the configured public base (behind an HTTPS proxy) or what the request says
    (as Werkzeug's `request.host_url` reads it). Built from the raw query string: Twilio signs the URL
    exactly as we handed it out."""
    query = raw_query(env)
    base = public_url or f"{env['wsgi.url_scheme']}://{get_host(env)}{_wsgi_text(env.get('SCRIPT_NAME', ''))}"
    return f"{base}{request_path(env)}" + (f"?{query}" if query else "")


def request_path(env: dict) -> str:
    """The path requested, as Werkzeug's `request.path` gives it."""
    return "/" + _wsgi_text(env.get("PATH_INFO", "")).lstrip("/")


def _wsgi_text(value: str) -> str:
    """A path as WSGI hands it over (UTF-8 bytes decoded as latin-1) back to text, as Werkzeug does."""
    return value.encode("latin-1").decode("utf-8", "replace")


def is_signed(env: dict, form, validator: RequestValidator, public_url: str = "") -> bool:
    """Is this request (its WSGI environ and parsed form) signed by Twilio?"""
    signature = env.get("HTTP_X_TWILIO_SIGNATURE", "")
    if not signature:
        return False
    params = form if env.get("REQUEST_METHOD") == "POST" else {}
    url = signed_url(env, public_url)
    # Fast path: the URL exactly as requested is one of the two forms validate() accepts (with and without
    # the port), so a match here is a match there, with one HMAC instead of two.
    if hmac.compare_digest(validator.compute_signature(url, params), signature):
        return True
    return validator.validate(url, params, signature)


def is_signed_by_twilio(request: Request, validator: RequestValidator, public_url: str = "") -> bool:
    """`request`: the request object itself (cheaper than Flask's proxy), or the proxy."""
    env = request.environ
    if not env.get("HTTP_X_TWILIO_SIGNATURE"):
        return False
    form = twilio_params(request).form if env.get("REQUEST_METHOD") == "POST" else {}
    return is_signed(env, form, validator, public_url)
