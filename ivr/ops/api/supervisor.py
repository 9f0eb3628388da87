"""The supervisor's view: queues, agents, today's service figures, the mode and the go-live check."""
from __future__ import annotations

from flask import jsonify

from ivr.ops import supervisor
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires


@bp.get("/supervisor")
@requires("see the hotline")
def supervisor_get():
    """What the dashboard's first screen shows, from the same reading (ivr/ops/supervisor.py)."""
    return jsonify(supervisor.as_json(supervisor.build(hotline())))
