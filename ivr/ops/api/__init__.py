"""The JSON API under /api/: mode, incidents, announcements, callbacks, calls, statistics and reports.

Every route but the document needs `Authorization: Bearer <token>` (`ivr users token NAME`) and a role:
viewers read, ops switch the mode and work callbacks, admins manage incidents and announcements. Every
request is checked against the OpenAPI document (ivr/ops/openapi.yaml) before a route sees it; every
change needs a reason, which the audit log keeps. Errors are JSON with a clear message; a refused request
changes nothing.
"""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api")

from ivr.ops.api import document, errors  # noqa: E402

errors.register(bp)
document.register(bp)

# Each module adds its routes to bp.
from ivr.ops.api import (  # noqa: E402,F401
    agents, announcements, calls, callbacks, incidents, mode, notice_report, notices, reports, schedule, supervisor)
from ivr.ops.api.document import load_openapi  # noqa: E402,F401
