"""Incidents: create, change, activate."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops import caller_view
from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.mode import problems_json
from ivr.ops.api.wire import ID, jsonable
from ivr.store import incidents
from ivr.store.state import get_mode


def _incident(incident_id: int) -> dict:
    return next(jsonable(r) for r in incidents.list_incidents(hotline().db) if r["id"] == incident_id)


def _preflight() -> list[dict]:
    """The go-live check after an activation, for the mode the hotline is in."""
    h = hotline()
    return problems_json(caller_view.of_hotline(h, for_mode=get_mode(h.db)[0]).problems)


@bp.get("/incidents")
@requires("see the hotline")
def incidents_list():
    return jsonify(incidents=[jsonable(r) for r in incidents.list_incidents(hotline().db)])


@bp.post("/incidents")
@requires("change the incidents")
def incidents_create():
    body, h = g.body, hotline()
    new_id = incidents.create(h.db, title=body["title"], severity=body["severity"], exposed=body.get("exposed", ""),
                              severities=h.rules.rules.severities, actor=g.user,
                              activate=body.get("activate", False), reason=body["reason"],
                              languages=list(h.rules.rules.languages), carry_over=body.get("carry_over", False))
    return jsonify({**_incident(new_id), **({"preflight": _preflight()} if body.get("activate") else {})}), 201


@bp.post(f"/incidents/<{ID}:incident_id>/activate")
@requires("change the incidents")
def incidents_activate(incident_id: int):
    h = hotline()
    copied = incidents.activate_incident(h.db, incident_id, actor=g.user, reason=g.body["reason"],
                                         languages=list(h.rules.rules.languages),
                                         carry_over=g.body.get("carry_over", False))
    return jsonify({**_incident(incident_id), "carried_over": copied, "preflight": _preflight()})


@bp.patch(f"/incidents/<{ID}:incident_id>")
@requires("change the incidents")
def incidents_update(incident_id: int):
    body, h = g.body, hotline()
    incidents.update_incident(h.db, incident_id, severities=h.rules.rules.severities, actor=g.user,
                              reason=body["reason"], title=body.get("title"), severity=body.get("severity"),
                              exposed=body.get("exposed"))
    return jsonify(_incident(incident_id))
