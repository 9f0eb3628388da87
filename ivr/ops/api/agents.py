"""Who can take a caller now: every active agent's state, from the agent line and the desk together."""
from __future__ import annotations

from flask import jsonify

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import timestamp
from ivr.store import reads


@bp.get("/agents")
@requires("see the hotline")  # names and states, as the dashboard shows them
def agents_list():
    """Each active agent's state (reads.agents_now, as the dashboard, agents page, desk and metrics show it)."""
    with hotline().db.read() as conn:
        now = reads.agents_now(conn)
    return jsonify(agents=[{"name": a.name, "state": a.state, "since": timestamp(a.since)} for a in now])
