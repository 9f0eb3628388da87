"""The callback worklist and marking a callback done."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import ID, jsonable
from ivr.store import queues, sealed
from ivr.store.users import role_at_least


@bp.get("/callbacks")
@requires("see the hotline")
def callbacks_list():
    """The agents' worklist, highest priority first, then in the order callers called."""
    db = hotline().db
    rows = queues.callbacks(db, g.query.get("status", "waiting"))
    full = role_at_least(g.role, "ops")  # a callback's number is personal data: viewers see it masked
    rows = [{**r, "number": sealed.shown(db, r["number"], r["number_masked"]) if full else r["number_masked"]}
            for r in rows]
    return jsonify(callbacks=[jsonable(r) for r in rows])


@bp.post(f"/callbacks/<{ID}:callback_id>/done")
@requires("close a callback")
def callbacks_done(callback_id: int):
    queues.callback_done(hotline().db, callback_id, actor=g.user, note=g.body.get("note", ""),
                         reason=g.body["reason"])
    return jsonify(id=callback_id, status="done")
