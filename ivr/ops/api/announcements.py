"""Announcement versions of the active incident (or, when made, of the one named): from text, from an upload;
publish, roll back, export."""
from __future__ import annotations

from flask import Response, g, jsonify, request

from ivr.ops.api import bp
from ivr.ops.api.auth import hotline, requires
from ivr.ops.api.errors import error
from ivr.ops.api.wire import ID, jsonable
from ivr.store import announcements


def _version(row: dict) -> dict:
    return {**jsonable(row), "audio_url": f"/media/{row['media_sha256']}.wav" if row.get("media_sha256") else None}


@bp.get("/announcements")
@requires("see the hotline")
def announcements_list():
    rows = announcements.list_versions(hotline().db, lang=g.query.get("lang"), topic=g.query.get("topic"))
    return jsonify(announcements=[_version(r) for r in rows])


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
                                                  reason=g.body["reason"])))


@bp.post("/announcements/rollback")
@requires("change the announcements")
def announcements_rollback():
    body = g.body
    row = announcements.rollback(hotline().db, lang=body["lang"], topic=body.get("topic", "main"),
                                 to_version=body.get("to_version"), actor=g.user, reason=body["reason"])
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
