"""The hotline's mode: message only, or live agents."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import timestamp
from ivr.store.state import get_mode, set_mode


@bp.get("/mode")
@requires("viewer")
def mode_get():
    mode, at, by = get_mode(hotline().db)
    return jsonify(mode=mode, since=timestamp(at), by=by)


@bp.post("/mode")
@requires("ops")
def mode_post():
    before, after = set_mode(hotline().db, g.body["mode"], reason=g.body["reason"], actor=g.user)
    return jsonify(mode=after, previous=before, changed=before != after)
