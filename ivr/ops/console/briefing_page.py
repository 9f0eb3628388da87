"""Arming the call centre: the published agent briefing for everyone; versions and editing for admins."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ivr.core.errors import Refused
from ivr.store import briefings
from ivr.ops.console.base import actor, bp, hotline, log, needs, reason
from ivr.store.users import role_at_least


def _page(status: int = 200, error: str | None = None, draft=None):
    """The page; the editor starts from `draft` (what was just sent) or else the latest version."""
    incident, published, versions = briefings.for_active_incident(hotline().db)
    can_edit = role_at_least(g.user.role, "admin")
    return render_template("console/briefing.html", incident=incident, published=published,
                           versions=versions if can_edit else [], draft=draft or (versions[0] if versions else {}),
                           error=error, can_edit=can_edit, labels=briefings.LABELS), status


@bp.get("/briefing")
@needs("see the hotline")
def briefing():
    return _page()


@bp.post("/briefing")
@needs("change the briefing")
def briefing_create():
    """Save the edited briefing as a new version (published at once if asked)."""
    try:
        row = briefings.create(hotline().db, request.form, actor=actor(), reason=reason(request.form),
                               publish=request.form.get("publish") == "yes")
    except Refused as exc:
        log.warning("console: %s: briefing refused: %s", actor(), exc)
        return _page(400, f"{exc}. Nothing was changed.", draft=request.form)
    log.info("console: %s created briefing v%s (%s)", actor(), row["version"], row["status"])
    flash(f"Briefing version {row['version']} saved" + (" and published." if row["status"] == "published"
                                                        else " as a draft."), "ok")
    return redirect(url_for("console.briefing"), 303)


@bp.post("/briefing/<int:briefing_id>/publish")
@needs("change the briefing")
def briefing_publish(briefing_id: int):
    try:
        row = briefings.publish(hotline().db, briefing_id, actor=actor(), reason=reason(request.form))
    except Refused as exc:
        log.warning("console: %s: briefing publish refused: %s", actor(), exc)
        return _page(400, f"{exc}. Nothing was changed.")
    log.info("console: %s published briefing v%s", actor(), row["version"])
    flash(f"Briefing version {row['version']} is published: agents see it now.", "ok")
    return redirect(url_for("console.briefing"), 303)
