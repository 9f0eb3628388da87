"""Two-person publishing in the console: the approval view (the exact phone-ready audio and the text), approve
as the second person, override as an admin; and what the dashboard's approvals panel shows."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from ivr.core.errors import Refused
from ivr.ops.console.base import actor, bp, hotline, log, needs, reason
from ivr.store import announcements, approvals


@bp.app_template_global("statement_approvals")
def statement_approvals() -> dict:
    """Drafts awaiting approval and recent overrides, for _statement_approvals.html (the dashboard)."""
    db = hotline().db
    return {"awaiting": approvals.awaiting(db), "overrides": approvals.recent_overrides(db),
            "on": hotline().config.two_person_publishing}


def _view(announcement_id: int, status: int = 200, error: str | None = None):
    row = announcements.get(hotline().db, announcement_id)
    return render_template("console/approval.html", row=row, error=error, form=request.form), status


@bp.get("/announcements/<int:announcement_id>/approval")
@needs("see the hotline")
def announcement_approval(announcement_id: int):
    """What the approver hears and reads: exactly the file and the text callers will get."""
    try:
        return _view(announcement_id)
    except announcements.AnnouncementNotFound as exc:
        flash(f"{exc}.", "error")
        return redirect(url_for("console.announcements_page"), 303)


def _decided(announcement_id: int, decide, what: str):
    try:
        row = decide(hotline().db, announcement_id, actor=actor(), reason=reason(request.form))
    except announcements.AnnouncementNotFound as exc:
        flash(f"{exc}. Nothing was changed.", "error")
        return redirect(url_for("console.announcements_page"), 303)
    except Refused as exc:
        log.warning("console: %s: announcement %s not %s: %s", actor(), announcement_id, what, exc)
        return _view(announcement_id, 400, f"{exc}. Nothing was changed.")
    log.info("console: %s: announcement %s (%s/%s v%s) %s", actor(), row["id"], row["language"], row["topic"],
             row["version"], what)
    flash(f"{row['language']}/{row['topic']} version {row['version']} {what}: callers hear it now.", "ok")
    for warning in row.get("warnings", ()):
        flash(f"Warning: {warning}.", "warning")
    return redirect(url_for("console.announcements_page") + f"#{row['language']}-{row['topic']}", 303)


@bp.post("/announcements/<int:announcement_id>/approve")
@needs("approve a statement")
def announcement_approve(announcement_id: int):
    return _decided(announcement_id, approvals.approve, "approved")


@bp.post("/announcements/<int:announcement_id>/override")
@needs("override two-person publishing")
def announcement_override(announcement_id: int):
    return _decided(announcement_id, approvals.override, "published without a second person (override)")
