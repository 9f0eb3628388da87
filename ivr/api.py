"""The JSON API under /api/: the hotline's mode and its announcements, for scripts and the console.

Every route needs `Authorization: Bearer <token>` (`ivr users token NAME`) and a role: viewers read,
ops switch the mode, admins manage announcements. Errors are JSON with a clear message; nothing is
changed by a refused request.
"""
from __future__ import annotations

import functools
import logging

from flask import Blueprint, Response, current_app, g, jsonify, request

from ivr import announcements, queues
from ivr.audio import AudioRejected
from ivr.state import get_mode, set_mode
from ivr.tts import TTSError
from ivr.users import role_at_least, user_for_token

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


def _hotline():
    return current_app.extensions["ivr"]


def _error(status: int, message: str):
    return jsonify(error=message), status


def requires(role: str):
    """Bearer-token authentication with at least `role`; the user's name becomes the audit actor."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            token = header[7:].strip() if header.startswith("Bearer ") else ""
            user = user_for_token(_hotline().db, token) if token else None
            if user is None:
                log.warning("API: refused %s %s: no valid token", request.method, request.path)
                return _error(401, "authentication required: Authorization: Bearer <token>")
            g.user, g.role = user
            if not role_at_least(g.role, role):
                log.warning("API: refused %s %s for %s (%s): needs %s", request.method, request.path, g.user,
                            g.role, role)
                return _error(403, f"this needs the {role} role; you are {g.role}")
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _json() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _flag(value) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _serial(row: dict) -> dict:
    out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
    out["audio_url"] = f"/media/{row['media_sha256']}.wav" if row.get("media_sha256") else None
    return out


@bp.errorhandler(announcements.AnnouncementError)
@bp.errorhandler(AudioRejected)
@bp.errorhandler(TTSError)
def _refused(exc):
    return _error(400, f"{exc} (nothing was changed)")


@bp.errorhandler(413)
def _too_big(_exc):
    return _error(413, f"the request is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes")


@bp.get("/mode")
@requires("viewer")
def mode_get():
    mode, at, by = get_mode(_hotline().db)
    return jsonify(mode=mode, since=at.isoformat(), by=by)


@bp.post("/mode")
@requires("ops")
def mode_post():
    body = _json()
    try:
        before, after = set_mode(_hotline().db, str(body.get("mode", "")), reason=str(body.get("reason", "")),
                                 actor=g.user)
    except ValueError as exc:
        return _error(400, str(exc))
    return jsonify(mode=after, previous=before, changed=before != after)


@bp.get("/announcements")
@requires("viewer")
def announcements_list():
    rows = announcements.list_versions(_hotline().db, lang=request.args.get("lang"), topic=request.args.get("topic"))
    return jsonify(announcements=[_serial(r) for r in rows])


@bp.post("/announcements/tts")
@requires("admin")
def announcements_tts():
    body, hotline = _json(), _hotline()
    row = announcements.create_from_text(
        hotline.db, hotline.config, hotline.rules.rules.languages, lang=str(body.get("lang", "")),
        topic=str(body.get("topic", "main")), text=str(body.get("text", "")), actor=g.user,
        publish=_flag(body.get("publish")), reason=str(body.get("reason", "")))
    return jsonify(_serial(row)), 201


@bp.post("/announcements/upload")
@requires("admin")
def announcements_upload():
    hotline = _hotline()
    upload = request.files.get("file")
    if upload is None:
        return _error(400, "send the audio as a multipart form field named 'file'")
    form = request.form
    row = announcements.create_from_audio(
        hotline.db, hotline.config, hotline.rules.rules.languages, data=upload.read(),
        lang=form.get("lang", ""), topic=form.get("topic", "main"), text=form.get("text"), actor=g.user,
        publish=_flag(form.get("publish")), reason=form.get("reason", ""))
    return jsonify(_serial(row)), 201


@bp.post("/announcements/<int:announcement_id>/publish")
@requires("admin")
def announcements_publish(announcement_id: int):
    row = announcements.publish(_hotline().db, announcement_id, actor=g.user, reason=str(_json().get("reason", "")))
    return jsonify(_serial(row))


@bp.post("/announcements/rollback")
@requires("admin")
def announcements_rollback():
    body = _json()
    to_version = body.get("to_version")
    row = announcements.rollback(_hotline().db, lang=str(body.get("lang", "")), topic=str(body.get("topic", "main")),
                                 to_version=int(to_version) if to_version is not None else None, actor=g.user,
                                 reason=str(body.get("reason", "")))
    return jsonify(_serial(row))


@bp.get("/announcements/<int:announcement_id>/audio")
@requires("viewer")
def announcements_export(announcement_id: int):
    db = _hotline().db
    row = announcements.get(db, announcement_id)
    if not row["media_sha256"]:
        return _error(404, f"announcement {announcement_id} is text only")
    return Response(announcements.media_bytes(db, row["media_sha256"]), mimetype="audio/wav",
                    headers={"Content-Disposition": f'attachment; filename="announcement-{announcement_id}.wav"'})


@bp.get("/callbacks")
@requires("viewer")
def callbacks_list():
    """The agents' worklist, highest priority first, then in the order callers called."""
    status = request.args.get("status", "waiting")
    rows = queues.callbacks(_hotline().db, status if status in ("waiting", "done") else "waiting")
    if not role_at_least(g.role, "ops"):  # a callback's number is personal data: viewers see it masked
        rows = [{**r, "number": "***" + r["number"][-4:]} for r in rows]
    return jsonify(callbacks=[{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()}
                              for r in rows])


@bp.post("/callbacks/<int:callback_id>/done")
@requires("ops")
def callbacks_done(callback_id: int):
    try:
        queues.callback_done(_hotline().db, callback_id, actor=g.user, note=str(_json().get("note", "")))
    except queues.QueueError as exc:
        return _error(404, str(exc))
    return jsonify(id=callback_id, status="done")
