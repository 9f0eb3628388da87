"""Planned changes: schedule a mode switch, a publish or an incident activation for a time, see who planned
each and when it runs, cancel one. The list (and what was refused at its time) is also a partial the
dashboard includes (templates/_scheduled_changes.html), fed by the `scheduled_changes()` template global."""
from __future__ import annotations

from flask import g, render_template, request

from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.ops.roles import SCHEDULED, least_role
from ivr.store import announcements, incidents, scheduled
from ivr.store.users import role_at_least

OVERRIDE_MAX = 500


def may_schedule(kind: str) -> bool:
    """Whether the signed-in user may schedule or cancel a change of this kind (the change's own role)."""
    user = g.get("user")
    return bool(user) and role_at_least(user.role, least_role(SCHEDULED[kind]))


def scheduled_changes() -> dict:
    """What the partial shows: the changes to come, those refused or failed in the last day, the zone."""
    db = hotline().db
    return {"coming": scheduled.list_changes(db, include_past=False), "alerts": scheduled.alerts(db),
            "zone": hotline().config.timezone}


bp.add_app_template_global(scheduled_changes, "scheduled_changes")
bp.add_app_template_global(may_schedule, "may_schedule")
bp.add_app_template_filter(lambda at: scheduled.when_text(at, hotline().config.timezone), "planned_at")


def _choices() -> dict:
    """What may be scheduled: versions of the active incident not published now, incidents not active."""
    db = hotline().db
    return {"versions": [v for v in announcements.list_versions(db) if v["status"] != "published"],
            "incidents": [i for i in incidents.list_incidents(db) if i["status"] != "active"]}


def _page(status: int = 200, error: str | None = None, form_name: str | None = None):
    return render_template("console/schedule.html", **_choices(), past=scheduled.list_changes(
        hotline().db)[:50], zone=hotline().config.timezone, error=error, form_name=form_name,
        form=request.form), status


@bp.get("/schedule")
@needs("see the hotline")
def schedule_page():
    return _page()


@bp.post("/schedule")
@needs("schedule a change")
def schedule_add():
    form = request.form
    kind = form.get("kind", "")
    try:
        if kind not in SCHEDULED:
            raise FormError(f"there is no kind of change called {kind!r}")
        if not may_schedule(kind):
            raise FormError(f"scheduling this ({SCHEDULED[kind]}) needs the {least_role(SCHEDULED[kind])} role")
        override = (form.get("override") or "").strip()
        if len(override) > OVERRIDE_MAX:
            raise FormError(f"the override is longer than {OVERRIDE_MAX} characters")
        row = scheduled.add(hotline().db, kind=kind, target=form.get("target", ""),
                            at=scheduled.parse_at(form.get("at", ""), hotline().config.timezone), reason=reason(form),
                            actor=actor(), override=override, carry_over=form.get("carry_over") == "yes",
                            two_person=hotline().config.two_person_publishing)
    except (FormError, scheduled.ScheduleRefused) as exc:
        return refused(_page, exc, f"schedule-{kind}")
    when = scheduled.when_text(row["run_at"], hotline().config.timezone)
    return done("console.schedule_page", f"Scheduled: {row['what']} at {when}.", f"#change-{row['id']}")


@bp.post("/schedule/<int:change_id>/cancel")
@needs("schedule a change")
def schedule_cancel(change_id: int):
    try:
        row = scheduled.get(hotline().db, change_id)
        if not may_schedule(row["kind"]):
            raise FormError(f"cancelling this needs the {least_role(SCHEDULED[row['kind']])} role")
        scheduled.cancel(hotline().db, change_id, actor=actor(), reason=reason(request.form))
    except (FormError, scheduled.ScheduleRefused) as exc:
        return refused(_page, exc, f"cancel-{change_id}")
    return done("console.schedule_page", f"Cancelled: {row['what']} will not be carried out.")
