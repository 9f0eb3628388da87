"""A per-session CSRF token: every console form carries it, and a POST without the right one changes nothing."""
from __future__ import annotations

import hmac
import secrets

from flask import request, session

FIELD = "csrf_token"


def token() -> str:
    """This session's token, made on first use (the login form needs one before anyone is signed in)."""
    value = session.get("csrf")
    if not value:
        value = session["csrf"] = secrets.token_urlsafe(32)
    return value


def renew() -> None:
    """A fresh token at sign-in, so a token seen before signing in is worth nothing afterwards."""
    session["csrf"] = secrets.token_urlsafe(32)


def valid() -> bool:
    """Whether this request carries the session's token (form field, or header for scripts)."""
    expected = session.get("csrf") or ""
    sent = request.form.get(FIELD) or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())
