"""The JSON API under /api/: the hotline's mode and its announcements, for scripts and the console.

Every route needs `Authorization: Bearer <token>` (`ivr users token NAME`) and a role: viewers read,
ops switch the mode, admins manage announcements. Errors are JSON with a clear message; nothing is
changed by a refused request.
"""
from __future__ import annotations

import functools
import logging
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request

from sqlalchemy import func, select

from ivr.core.errors import Refused
from ivr.store import announcements, incidents, queues
from ivr.core.call_status import TERMINAL
from ivr.store.models import Call, CallEvent, utcnow
from ivr.store.state import get_mode, set_mode
from ivr.store.users import role_at_least, user_for_token

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


@bp.errorhandler(Refused)
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


# -- incidents, calls, stats -------------------------------------------------------------------------------
def _iso(row: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}


@bp.get("/incidents")
@requires("viewer")
def incidents_list():
    return jsonify(incidents=[_iso(r) for r in incidents.list_incidents(_hotline().db)])


@bp.post("/incidents")
@requires("admin")
def incidents_create():
    body, hotline = _json(), _hotline()
    new_id = incidents.create(hotline.db, title=str(body.get("title", "")), severity=str(body.get("severity", "")),
                              exposed=str(body.get("exposed", "")), severities=hotline.rules.rules.severities,
                              actor=g.user, activate=_flag(body.get("activate")), reason=str(body.get("reason", "")))
    return jsonify(next(_iso(r) for r in incidents.list_incidents(hotline.db) if r["id"] == new_id)), 201


@bp.post("/incidents/<int:incident_id>/activate")
@requires("admin")
def incidents_activate(incident_id: int):
    hotline = _hotline()
    incidents.activate_incident(hotline.db, incident_id, actor=g.user, reason=str(_json().get("reason", "")))
    return jsonify(next(_iso(r) for r in incidents.list_incidents(hotline.db) if r["id"] == incident_id))


@bp.patch("/incidents/<int:incident_id>")
@requires("admin")
def incidents_update(incident_id: int):
    body, hotline = _json(), _hotline()
    incidents.update_incident(hotline.db, incident_id, severities=hotline.rules.rules.severities, actor=g.user,
                              reason=str(body.get("reason", "")), title=body.get("title"),
                              severity=body.get("severity"), exposed=body.get("exposed"))
    return jsonify(next(_iso(r) for r in incidents.list_incidents(hotline.db) if r["id"] == incident_id))


@bp.get("/calls")
@requires("viewer")
def calls_list():
    """Recent calls with their path through the menu (numbers are only ever stored masked)."""
    limit = max(1, min(int(request.args.get("limit", 50) or 50), 500))
    with _hotline().db.read() as conn:
        rows = conn.execute(select(Call.call_sid, Call.started_at, Call.caller_masked, Call.language, Call.mode,
                                   Call.outcome, Call.status, Call.duration_s)
                            .order_by(Call.started_at.desc()).limit(limit)).all()
        sids = [r.call_sid for r in rows]
        steps = conn.execute(select(CallEvent.call_sid, CallEvent.kind, CallEvent.digits, CallEvent.detail)
                             .where(CallEvent.call_sid.in_(sids)).order_by(CallEvent.id)).all() if sids else []
    path: dict[str, list] = {}
    for s in steps:
        path.setdefault(s.call_sid, []).append({"kind": s.kind, "digits": s.digits, "detail": s.detail})
    return jsonify(calls=[{**_iso(dict(r._mapping)), "path": path.get(r.call_sid, [])} for r in rows])


@bp.get("/stats")
@requires("viewer")
def stats():
    """The hotline at a glance: mode, calls, outcomes, queues and callbacks."""
    hotline = _hotline()
    snap = hotline.state.current()
    now = utcnow()
    with hotline.db.read() as conn:
        last_hour = conn.execute(select(func.count()).select_from(Call)
                                 .where(Call.started_at >= now - timedelta(hours=1))).scalar()
        in_progress = conn.execute(select(func.count()).select_from(Call).where(
            Call.started_at >= now - timedelta(hours=2), Call.status.is_(None) | Call.status.notin_(TERMINAL))
        ).scalar()
        outcomes = conn.execute(select(func.coalesce(Call.outcome, "unknown"), func.count())
                                .where(Call.started_at >= now - timedelta(hours=24)).group_by(Call.outcome)).all()
    queue_stats = queues.queue_stats(hotline.db, cached=False)
    return jsonify(
        mode=snap.mode, incident={"id": snap.content.incident_id, "title": snap.content.incident_title,
                                  "severity": snap.content.severity},
        calls_last_hour=last_hour, calls_in_progress=in_progress,
        outcomes_last_24h={o: n for o, n in outcomes},
        queues={name: {"waiting": queue_stats[name].waiting if name in queue_stats else 0,
                       "longest_wait_s": queue_stats[name].longest_wait_s if name in queue_stats else 0}
                for name in hotline.rules.rules.queues},
        callbacks_waiting=len(queues.callbacks(hotline.db)),
    )


@bp.get("/openapi.json")
def openapi():
    """The API's OpenAPI 3.1 description (public: it describes, it reveals nothing)."""
    return jsonify(load_openapi())


def load_openapi() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).with_name("openapi.yaml")).read_text(encoding="utf-8"))
