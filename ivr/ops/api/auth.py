"""Bearer tokens and roles; then the request is checked against the document (ivr/ops/api/document.py)."""
from __future__ import annotations

import functools
import logging

from flask import current_app, g, request

from ivr.ops.api.document import check_request
from ivr.ops.api.errors import ApiError
from ivr.ops.roles import least_role
from ivr.store.users import role_at_least, user_for_token

log = logging.getLogger(__name__)


def hotline():
    return current_app.extensions["ivr"]


def requires(action: str):
    """What a route does, an action of ivr/ops/roles.py: at least the role the table gives it, as in the
    console; the user's name becomes the audit actor, and `g.query` and `g.body` hold the request's
    parameters and body as the document allows them (401, 403, then 400 otherwise)."""
    role = least_role(action)

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            token = header[7:].strip() if header.startswith("Bearer ") else ""
            user = user_for_token(hotline().db, token) if token else None
            if user is None:
                log.warning("API: refused %s %s: no valid token", request.method, request.path)
                raise ApiError(401, "authentication required: Authorization: Bearer <token>")
            g.user, g.role = user
            if not role_at_least(g.role, role):
                log.warning("API: refused %s %s for %s (%s): needs %s", request.method, request.path, g.user,
                            g.role, role)
                raise ApiError(403, f"this needs the {role} role; you are {g.role}")
            g.query, g.body = check_request(hotline().rules.rules)
            return view(*args, **kwargs)

        wrapper.api_action, wrapper.api_role = action, role
        return wrapper

    return decorate
