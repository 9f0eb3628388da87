"""Incidents: create one, change its severity and what was exposed, and activate it without leaving callers
in silence (every language must have something published, or the current announcements are carried over)."""
from __future__ import annotations

from flask import render_template, request

from ivr.ops import caller_view
from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.store import incidents
from ivr.store.state import get_mode

TITLE_MAX, EXPOSED_MAX = 200, 5000


def _rules():
    return hotline().rules.rules


def _coverage(rows: list[dict]) -> dict[int, list[str]]:
    """Per incident, the languages with nothing published for it."""
    languages = list(_rules().languages)
    with hotline().db.read() as conn:
        return {r["id"]: incidents.languages_without_announcement(conn, r["id"], languages) for r in rows}


def _page(status: int = 200, error: str | None = None, form_name: str | None = None):
    order = {"active": 0, "draft": 1}  # the one callers hear about first, then those being prepared
    rows = sorted(incidents.list_incidents(hotline().db), key=lambda r: (order.get(r["status"], 2), -r["id"]))
    return render_template("console/incidents.html", rows=rows, missing=_coverage(rows), rules=_rules(),
                           error=error, form_name=form_name, form=request.form), status


def _field(form, name: str, limit: int, what: str) -> str:
    value = (form.get(name) or "").strip()
    if len(value) > limit:
        raise FormError(f"the {what} is longer than {limit} characters")
    return value


def _described(form) -> dict[str, str]:
    """What the create and edit forms say about an incident, checked for length."""
    return {"title": _field(form, "title", TITLE_MAX, "title"), "severity": form.get("severity", ""),
            "exposed": _field(form, "exposed", EXPOSED_MAX, "description of what was exposed")}


def _carry_out(form_name: str, make):
    """Carry out `make(form)`, which returns the incident it changed and what to tell the admin (said there,
    after a redirect); a refusal shows the page again with why, and nothing was changed."""
    try:
        incident_id, message = make(request.form)
    except (FormError, incidents.IncidentError) as exc:
        return refused(_page, exc, form_name)
    return done("console.incidents_page", message, f"#incident-{incident_id}")


@bp.get("/incidents")
@needs("see the hotline")
def incidents_page():
    return _page()


@bp.post("/incidents")
@needs("change the incidents")
def incident_create():
    def make(form):
        why = reason(form)
        new_id = incidents.create(hotline().db, **_described(form), severities=_rules().severities,
                                  actor=actor(), reason=why)
        return new_id, (f"Incident {new_id} was created as a draft: callers hear about it once it is "
                        "activated.")

    return _carry_out("create", make)


@bp.post("/incidents/<int:incident_id>")
@needs("change the incidents")
def incident_update(incident_id: int):
    """Change the title, severity or what was exposed; only the fields that differ are changed and audited."""
    def make(form):
        why = reason(form)
        current = next((r for r in incidents.list_incidents(hotline().db) if r["id"] == incident_id), None)
        if current is None:
            raise FormError(f"there is no incident {incident_id}")
        changed = {k: v for k, v in _described(form).items() if v != (current[k] or "")}
        if not changed:
            raise FormError("nothing was changed in the form")
        if "title" in changed and not changed["title"]:
            raise FormError("an incident needs a title")
        incidents.update_incident(hotline().db, incident_id, severities=_rules().severities, actor=actor(),
                                  reason=why, **changed)
        return incident_id, f"Incident {incident_id}: {', '.join(changed)} changed."

    return _carry_out(f"update-{incident_id}", make)


@bp.post("/incidents/<int:incident_id>/activate")
@needs("change the incidents")
def incident_activate(incident_id: int):
    """Make this the incident callers hear about, never leaving a language with nothing published."""
    def make(form):
        copied = incidents.activate_incident(hotline().db, incident_id, actor=actor(), reason=reason(form),
                                             languages=list(_rules().languages),
                                             carry_over=form.get("carry_over") == "yes")
        told = f"Incident {incident_id} is active: callers hear about it from their next step."
        told += f" The current announcements were carried over: {', '.join(copied)}." if copied else ""
        # The go-live check after every activation, for the mode the hotline is in (the dashboard lists it).
        problems = caller_view.of_hotline(hotline(), for_mode=get_mode(hotline().db)[0]).problems
        return incident_id, told + (f" The go-live check found {len(problems)} problem(s): "
                                    + "; ".join(p.what for p in problems) + "." if problems else "")

    return _carry_out(f"activate-{incident_id}", make)
