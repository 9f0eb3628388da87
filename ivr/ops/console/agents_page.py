"""Agents: the people who take calls on the agent line; whether each is free, on a call or off the line;
adding one (number and PIN) and deactivating one, each with a reason."""
from __future__ import annotations

from flask import render_template, request

from ivr.store import reads
from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.store import agents
from ivr.store.models import utcnow

REFUSED = (FormError, agents.AgentError)


def _status(agent: dict, people: reads.Presence) -> str:
    if not agent["active"]:
        return "deactivated"
    if agent["name"] in people.on_call:
        return "on a call"
    return "free" if agent["name"] in people.available else "not on the line"


def _page(status: int = 200, error: str | None = None, form_name: str | None = None):
    db = hotline().db
    with db.read() as conn:
        people = reads.presence(conn, utcnow())
    rows = [dict(a, status=_status(a, people)) for a in agents.agents(db)]
    return render_template("console/agents.html", rows=rows, error=error, form_name=form_name,
                           form=request.form), status


def _refused(exc: Exception, form_name: str):
    return refused(_page, exc, form_name)


@bp.get("/agents")
@needs("ops")
def agents_page():
    return _page()


@bp.post("/agents")
@needs("admin")
def agent_add():
    form = request.form
    try:
        why = reason(form)
        name = (form.get("name") or "").strip()
        if not name or len(name) > 120:
            raise FormError("an agent's name is 1 to 120 characters")
        agents.add_agent(hotline().db, hotline().config.secret_key, name, (form.get("phone") or "").strip(),
                         (form.get("pin") or "").strip(), actor=actor(), reason=why)
    except REFUSED as exc:
        return _refused(exc, "add")
    return done("console.agents_page", f"Agent {name} was added: they sign in by calling the agent line from "
                                       "that number.")


@bp.post("/agents/deactivate")
@needs("admin")
def agent_deactivate():
    form = request.form
    name = (form.get("name") or "").strip()
    try:
        agents.deactivate_agent(hotline().db, name, actor=actor(), reason=reason(form))
    except REFUSED as exc:
        return _refused(exc, f"deactivate-{name}")
    return done("console.agents_page", f"Agent {name} is deactivated: their number and PIN no longer open the "
                                       "agent line.")
