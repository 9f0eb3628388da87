"""Agents: the people who take calls on the agent line, each on the line, on a call, in wrap-up, on the desk
only, on a break or signed out (ivr/store/reads.py agents_now, from the agent line and the desk together);
adding one (number and PIN) and deactivating one, with a reason."""
from __future__ import annotations

from flask import render_template, request

from ivr.ops.console.base import FormError, actor, bp, done, hotline, needs, reason, refused
from ivr.store import agents, reads

REFUSED = (FormError, agents.AgentError)


def _page(status: int = 200, error: str | None = None, form_name: str | None = None):
    db = hotline().db
    with db.read() as conn:
        now = {a.name: a.state for a in reads.agents_now(conn)}
    rows = [dict(a, status=now.get(a["name"], reads.SIGNED_OUT) if a["active"] else "deactivated")
            for a in agents.agents(db)]
    return render_template("console/agents.html", rows=rows, error=error, form_name=form_name,
                           form=request.form), status


def _refused(exc: Exception, form_name: str):
    return refused(_page, exc, form_name)


@bp.get("/agents")
@needs("see the agents")
def agents_page():
    return _page()


@bp.post("/agents")
@needs("change the agents")
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
@needs("change the agents")
def agent_deactivate():
    form = request.form
    name = (form.get("name") or "").strip()
    try:
        agents.deactivate_agent(hotline().db, name, actor=actor(), reason=reason(form))
    except REFUSED as exc:
        return _refused(exc, f"deactivate-{name}")
    return done("console.agents_page", f"Agent {name} is deactivated: their number and PIN no longer open the "
                                       "agent line.")
