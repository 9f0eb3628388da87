"""Every answer under /api/ is JSON, errors included: `{"error": "..."}` with a status the document lists.

Refusals (ivr/core/errors.py) say what kind they are: a missing thing is 404, a clash with
the current state 409, anything else the request got wrong 400; audio (or text to speak) that is well formed
but unusable on the phone, or a time that has passed, is 422. Nothing is changed by a refused request.
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from ivr.core.errors import Conflict, NotFound, Refused, Unprocessable
from ivr.core.limits import upload_too_large
from ivr.media.audio import AudioRejected
from ivr.media.tts import TTSError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal decided by the API itself (bad token, wrong role, a request outside the document)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error(status: int, message: str, headers: dict | None = None):
    resp = jsonify(error=message)
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


def _http_error(exc: HTTPException):
    # Keep the headers Werkzeug chose (e.g. `Allow` on a 405), drop its HTML body.
    headers = {k: v for k, v in exc.get_response().headers.items() if k.lower() not in ("content-type",
                                                                                      "content-length")}
    message = exc.description or exc.name
    if exc.code == 413:
        message = upload_too_large(current_app.config["IVR"].upload_max_bytes)
    return error(exc.code or 500, message, headers)


def _status(exc: Refused) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, (AudioRejected, TTSError)):  # well formed, but no use on the phone: bytes no decoder
        return 422                                   # reads, text that synthesises to silence
    if isinstance(exc, Unprocessable):  # well formed, but not a time a change can be planned for
        return 422
    return 400


def register(bp: Blueprint) -> None:
    @bp.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error(exc.status, str(exc))

    @bp.errorhandler(Refused)
    def _refused(exc: Refused):
        return error(_status(exc), f"{exc} (nothing was changed)")

    @bp.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return _http_error(exc)

    @bp.errorhandler(Exception)
    def _crashed(exc: Exception):
        log.exception("API: %s %s failed", request.method, request.path)
        return error(500, "internal error: the request failed and was not completed; see the server log")

    @bp.before_app_request
    def _unrouted():
        """404 and 405 happen before any blueprint is chosen, so its handlers never see them: answer those
        under /api/ here, in JSON. The rest of the site keeps its own pages."""
        exc = request.routing_exception
        if exc is None or isinstance(exc, RequestRedirect) or not isinstance(exc, HTTPException):
            return None
        if request.path == bp.url_prefix or request.path.startswith(bp.url_prefix + "/"):
            return _http_error(exc)
        return None
