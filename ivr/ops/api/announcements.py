"""Announcement versions of the active incident (or, when made, of the one named): from text, from an upload;
publish (with two-person publishing: ask for approval), approve or override, roll back, export."""
from __future__ import annotations

from flask import Response, g, jsonify, request

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.errors import error
from ivr.ops.api.wire import ID, jsonable
from ivr.store import announcements, approvals


def _version(row: dict) -> dict:
    """A version as the API gives it: with the URL of the exact phone-ready file callers would hear (its
    checksum is `media_sha256`), so an approver hears what she approves."""
    return {**jsonable(row), "audio_url": f"/media/{row['media_sha256']}.wav" if row.get("media_sha256") else None}


def _two_person() -> bool:
    return hotline().config.two_person_publishing


@bp.get("/announcements")
@requires("see the hotline")
def announcements_list():
    rows = announcements.list_versions(hotline().db, lang=g.query.get("lang"), topic=g.query.get("topic"))
    return jsonify(announcements=[_version(r) for r in rows])


@bp.get("/announcements/awaiting")
@requires("see the hotline")
def announcements_awaiting():
    """Drafts asked to be published that await a second person's approval (every incident)."""
    return jsonify(announcements=[_version(r) for r in approvals.awaiting(hotline().db)])


@bp.get(f"/announcements/<{ID}:announcement_id>")
@requires("see the hotline")
def announcements_one(announcement_id: int):
    return jsonify(_version(announcements.get(hotline().db, announcement_id)))


@bp.post("/announcements/tts")
@requires("change the announcements")
def announcements_tts():
    body, h = g.body, hotline()
    row = announcements.create_from_text(
        h.db, h.config, h.rules.rules.languages, lang=body["lang"], topic=body.get("topic", "main"),
        text=body["text"], actor=g.user, publish=body.get("publish", False), reason=body["reason"],
        incident_id=body.get("incident_id"))
    return jsonify(_version(row)), 201


@bp.post("/announcements/upload")
@requires("change the announcements")
def announcements_upload():
    body, h = g.body, hotline()
    row = announcements.create_from_audio(
        h.db, h.config, h.rules.rules.languages, data=request.files["file"].read(), lang=body["lang"],
        topic=body.get("topic", "main"), text=body.get("text"), actor=g.user, publish=body.get("publish", False),
        reason=body["reason"], incident_id=body.get("incident_id"))
    return jsonify(_version(row)), 201


@bp.post(f"/announcements/<{ID}:announcement_id>/publish")
@requires("change the announcements")
def announcements_publish(announcement_id: int):
    return jsonify(_version(announcements.publish(hotline().db, announcement_id, actor=g.user,
                                                  reason=g.body["reason"], two_person=_two_person())))


@bp.post(f"/announcements/<{ID}:announcement_id>/approve")
@requires("approve a statement")
def announcements_approve(announcement_id: int):
    """The second person approves a draft awaiting approval: callers hear it from their next step (or, when a
    publish of it is scheduled, from that time)."""
    return jsonify(_version(approvals.approve(hotline().db, announcement_id, actor=g.user, reason=g.body["reason"])))


@bp.post(f"/announcements/<{ID}:announcement_id>/override")
@requires("override two-person publishing")
def announcements_override(announcement_id: int):
    """An admin publishes a draft alone, in an emergency: the reason is audited and flagged on the dashboard."""
    return jsonify(_version(approvals.override(hotline().db, announcement_id, actor=g.user,
                                               reason=g.body["reason"])))


@bp.post("/announcements/rollback")
@requires("change the announcements")
def announcements_rollback():
    body = g.body
    row = announcements.rollback(hotline().db, lang=body["lang"], topic=body.get("topic", "main"),
                                 to_version=body.get("to_version"), actor=g.user, reason=body["reason"],
                                 two_person=_two_person())
    return jsonify(_version(row))


@bp.get(f"/announcements/<{ID}:announcement_id>/audio")
@requires("see the hotline")
def announcements_export(announcement_id: int):
    db = hotline().db
    row = announcements.get(db, announcement_id)
    if not row["media_sha256"]:
        return error(404, f"announcement {announcement_id} is text only")
    return Response(announcements.media_bytes(db, row["media_sha256"]), mimetype="audio/wav",
                    headers={"Content-Disposition": f'attachment; filename="announcement-{announcement_id}.wav"'})
