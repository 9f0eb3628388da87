"""The reports' figures (ivr/ops/reports.py): the same as the console's Reports page and `ivr report`."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops import reports
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires


@bp.get("/reports")
@requires("see the hotline")
def reports_get():
    """Calls, queues, wrap-ups and callbacks since a time, per hour or day."""
    return jsonify(reports.build(hotline().db, since=reports.parse_since(g.query.get("since")),
                                 bucket=g.query.get("bucket", "hour"),
                                 promised_hours=hotline().rules.rules.agents.callbacks.promised_hours))
