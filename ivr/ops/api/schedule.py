"""Changes planned ahead: schedule a mode switch, a publish or an activation for a time, list, cancel."""
from __future__ import annotations

from flask import g, jsonify

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.errors import ApiError
from ivr.ops.api.wire import ID, jsonable
from ivr.ops.roles import SCHEDULED, least_role
from ivr.store import scheduled
from ivr.store.users import role_at_least

TARGET = {"mode": "mode", "publish": "announcement_id", "activate": "incident_id"}  # the body field naming it


def _may(kind: str) -> None:
    """Scheduling or cancelling a change needs the role the change itself needs."""
    role = least_role(SCHEDULED[kind])
    if not role_at_least(g.role, role):
        raise ApiError(403, f"scheduling this ({SCHEDULED[kind]}) needs the {role} role; you are {g.role}")


def _change(row: dict) -> dict:
    return {**jsonable(row), "run_at_local": scheduled.when_text(row["run_at"], hotline().config.timezone)}


@bp.get("/schedule")
@requires("see the hotline")
def schedule_list():
    """The changes to come (soonest first), then the last ones carried out, refused or cancelled."""
    db = hotline().db
    return jsonify(counts=scheduled.counts(db), changes=[_change(r) for r in scheduled.list_changes(db)])


@bp.post("/schedule")
@requires("schedule a change")
def schedule_add():
    body, h = g.body, hotline()
    kind = body["kind"]
    _may(kind)
    row = scheduled.add(h.db, kind=kind, target=str(body[TARGET[kind]]),
                        at=scheduled.parse_at(body["at"], h.config.timezone), reason=body["reason"], actor=g.user,
                        override=body.get("override"), carry_over=body.get("carry_over", False),
                        two_person=h.config.two_person_publishing)
    return jsonify(_change(row)), 201


@bp.post(f"/schedule/<{ID}:change_id>/cancel")
@requires("schedule a change")
def schedule_cancel(change_id: int):
    db = hotline().db
    _may(scheduled.get(db, change_id)["kind"])
    return jsonify(_change(scheduled.cancel(db, change_id, actor=g.user, reason=g.body["reason"])))
