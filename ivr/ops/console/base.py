"""The console blueprint and what every page shares: the signed-in user, roles, CSRF, headers and errors."""
from __future__ import annotations

import logging
from datetime import timezone

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import RequestEntityTooLarge

from ivr.core.errors import Refused
from ivr.core import words
from ivr.core.limits import upload_too_large
from ivr.ops.console import auth, csrf
from ivr.ops.console.realtime import wait_text
from ivr.ops.roles import least_role
from ivr.store.users import role_at_least

log = logging.getLogger("ivr.ops.console")
bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")

REASON_MAX = 500
# Pages are the hotline's private state: never framed, never cached, only our own scripts and styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class FormError(Refused):
    """A form that cannot be carried out as sent; nothing was changed."""


def needs(action: str | None):
    """Declare what a view does, an action of ivr/ops/roles.py (None: anyone may); the blueprint's guard
    enforces the least role the table gives it, the same as the API's."""

    def decorate(view):
        view.console_action, view.console_role = action, least_role(action)
        return view

    return decorate


def hotline():
    return current_app.extensions["ivr"]


def actor() -> str:
    return g.user.name


def reason(form) -> str:
    """The required reason for a change: the audit log must say why."""
    text = (form.get("reason") or "").strip()
    if not text:
        raise FormError("a reason is required: the audit log must say why")
    if len(text) > REASON_MAX:
        raise FormError(f"the reason is longer than {REASON_MAX} characters")
    return text


def refused(page, exc: Exception, form_name: str):
    """A form that could not be carried out: logged, and its page again with the error and what was typed."""
    log.warning("console: %s: %s refused: %s", actor(), form_name, exc)
    return page(400, f"{exc}. Nothing was changed.", form_name)


def done(endpoint: str, message: str, anchor: str = ""):
    """A change made: logged, said on the page it came from (after a redirect, so a reload repeats nothing)."""
    log.info("console: %s: %s", actor(), message)
    flash(message, "ok")
    return redirect(url_for(endpoint) + anchor, 303)


def page_error(status: int, title: str, message: str):
    return render_template("console/error.html", title=title, message=message), status


@bp.before_request
def _guard():
    """Sign-in, role and CSRF checks for every console route, before any view runs."""
    if request.endpoint == "console.static":
        return None
    view = current_app.view_functions.get(request.endpoint)
    # A view that does not declare its role is admin-only: forgetting fails closed.
    needed = getattr(view, "console_role", "admin")
    g.user = auth.current_user()
    if needed is not None:
        if g.user is None:
            return auth.to_login()
        if not role_at_least(g.user.role, needed):
            log.warning("console: refused %s %s to %s (%s): needs %s", request.method, request.path, g.user.name,
                        g.user.role, needed)
            return page_error(403, "Not allowed",
                              f"This needs the {needed} role; you are signed in as {g.user.role}.")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not csrf.valid():
        log.warning("console: refused %s %s from %s (%s): missing or wrong CSRF token", request.method,
                    request.path, g.user.name if g.user else "anonymous", request.remote_addr)
        return page_error(400, "Form refused",
                          "This form was refused because its security token is missing or out of date "
                          "(for example, it was opened before you signed in again). Nothing was changed. "
                          "Go back, reload the page and try again.")
    return None


@bp.after_request
def _headers(resp):
    if request.endpoint != "console.static":
        resp.headers.update(SECURITY_HEADERS)
        resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    told = upload_too_large(current_app.config["IVR"].upload_max_bytes)
    return page_error(413, "Too large", f"{told[0].upper()}{told[1:]}. Nothing was stored.")


@bp.get("/<path:unknown>")
@needs(None)
def not_found(unknown: str = ""):
    """Any other address under /console/: the console's own page, not the framework's bare one."""
    return page_error(404, "Page not found", "There is no console page at this address. It may have been "
                                             "mistyped, or the link is out of date.")


bp.register_error_handler(404, lambda _exc: not_found())


@bp.errorhandler(OperationalError)
def _database_down(exc):
    # Callers are served from the last good snapshot; the console says plainly that it cannot act right now.
    log.error("console: %s %s: database unreachable: %s", request.method, request.path, exc)
    return page_error(503, "Database unreachable",
                      "The hotline's database cannot be reached right now, so this page cannot be shown or "
                      "this change made. Callers still hear the last good announcement. Try again shortly, "
                      "and check the audit log before repeating a change.")


@bp.app_template_filter("when")
def when(value) -> str:
    """A time from the database, always shown in UTC (SQLite hands times back without a zone)."""
    if not value:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# Who set something, in words: the seed data's actors are not people.
_NOT_PEOPLE = {"migration": "the hotline's first start", "setup": "the hotline's first start",
               "system": "the hotline itself"}


@bp.app_template_filter("who")
def who(name) -> str:
    return _NOT_PEOPLE.get(name or "", name or "nobody")


@bp.app_template_filter("who_to_me")
def who_to_me(name) -> str:
    """Who set something, as the signed-in reader hears it: themselves are "you" (a stale tab of theirs
    switched by another of their own tabs should not blame "someone else")."""
    user = g.get("user")
    if user is not None and name and name == user.name:
        return "you, in another tab or window"
    return who(name)


@bp.app_template_filter("outcome")
def outcome(code) -> str:
    return words.outcome(code)


@bp.app_template_filter("language")
def language(code) -> str:
    """A language code as the routing rules in force name it ("English")."""
    return words.language(hotline().rules.rules.languages, code)


# Globals, not context: the macros in _macros.html see them when imported.
bp.add_app_template_global(csrf.token, "csrf_token")
bp.add_app_template_global(lambda: g.get("user"), "current_user")
bp.add_app_template_global(role_at_least, "role_at_least")
bp.add_app_template_global(wait_text, "wait_text")
