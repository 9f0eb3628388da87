"""Every error answer under /voice/ is TwiML: a URL that does not exist, a method a route does not take, a
body over the limit, a failure outside the views. Twilio treats any 4xx/5xx (or a body that is not TwiML)
as an application error: the caller hears its error message and is cut off, unless a 200 with TwiML keeps
them on the line (https://www.twilio.com/docs/voice/twiml#twilio-request-and-response-cycle and
https://www.twilio.com/docs/api/errors/11200). So a signed request gets 200 and the safe reply (the latest
information, then the menu), as inside the views (webhooks/twilio_view.py); an unsigned one still gets 403.

A body over the limit cannot be checked without reading it, which is what the limit is there to prevent:
such a request is answered with TwiML when it carries a signature header at all, 403 when it does not.
The safe reply tells nothing that calling the hotline does not.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ivr.core import flow, verbs
from webhooks import twiml
from webhooks.security import is_signed_by_twilio

log = logging.getLogger("webhooks.voice")


def register(app: Flask) -> None:
    """Answer HTTP errors (and so the 500 of an unhandled exception) on /voice/* with TwiML; others as before."""
    app.register_error_handler(HTTPException, _voice_error)


def _voice_error(exc: HTTPException):
    if not request.path.startswith("/voice/"):
        return exc  # the console's and the API's own handlers, or Flask's default page
    hotline = current_app.extensions["ivr"]
    if not _signed(hotline, exc):
        log.warning("refused unsigned or forged request to %s from %s (%s)", request.path, request.remote_addr,
                    exc.code)
        return Response("Forbidden: not signed by Twilio\n", status=403, mimetype="text/plain")
    log.warning("answered %s to %s from %s with the safe reply (was HTTP %s)", request.method, request.path,
                request.remote_addr, exc.code)
    # the query string only: the body may be unreadable
    return Response(safe_twiml(hotline, request.args.get("l")), status=200, mimetype="text/xml")


def safe_twiml(hotline, lang: str | None) -> str:
    """The safe reply (the latest information, then the menu) in the caller's language, from the last good
    snapshot: what a signed request gets when its answer could not be made (here and webhooks/direct.py)."""
    rules = hotline.rules.rules
    reply = flow.safe_reply(rules, hotline.state.last_good(), verbs.Position(rules.language(lang), 0, 0))
    return twiml.render(reply, rules, hotline.config.public_url)


def _signed(hotline, exc: HTTPException) -> bool:
    if not hotline.config.validate_signatures:
        return True
    if not isinstance(exc, RequestEntityTooLarge):
        request.max_content_length = hotline.config.max_body_bytes
        try:
            return is_signed_by_twilio(request, hotline.validator, hotline.config.public_url)
        except RequestEntityTooLarge:
            pass
    return bool(request.headers.get("X-Twilio-Signature"))
