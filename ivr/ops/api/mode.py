"""The hotline's mode: message only, or live agents; the go-live check that guards live mode."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops import caller_view
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.wire import timestamp
from ivr.ops.preflight import switch_mode
from ivr.store.state import get_mode


def problems_json(problems) -> list[dict]:
    return [{"kind": p.kind, "what": p.what, "fix": p.fix} for p in problems]


@bp.get("/mode")
@requires("see the hotline")
def mode_get():
    mode, at, by = get_mode(hotline().db)
    return jsonify(mode=mode, since=timestamp(at), by=by)


@bp.post("/mode")
@requires("switch the mode")
def mode_post():
    """A switch to live runs the go-live check: refused (409) on problems unless `override` says why."""
    before, after, overridden = switch_mode(
        hotline().db, g.body["mode"], reason=g.body["reason"], actor=g.user, override=g.body.get("override"),
        problems_for_live=lambda: caller_view.of_hotline(hotline()).problems,
        how_to_override="send `override` with why it is fine (audited)")
    return jsonify(mode=after, previous=before, changed=before != after, overridden=problems_json(overridden))


@bp.get("/preflight")
@requires("see the hotline")
def preflight_get():
    """The go-live check, the same list `ivr preflight` and the dashboard give."""
    view = caller_view.of_hotline(hotline())
    return jsonify(ok=not view.problems, problems=problems_json(view.problems),
                   awaiting_approval=list(view.now.awaiting) if view.now else [])
