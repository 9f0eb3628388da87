"""The agent desk: the agent's status, the caller they are with beside the published briefing, a wrap-up,
and the owed callbacks with "call now". Its live part refreshes itself (console.js); ops see every agent.

"Call now" has Twilio ring the agent's phone (REST calls.create) and, when they answer, the agent line
dials the customer (webhooks/agent_callbacks.py `/voice/agent/call-now`).
"""
from __future__ import annotations

from datetime import datetime, timezone

from flask import flash, g, redirect, render_template, request, url_for
from twilio.base.exceptions import TwilioRestException

from ivr.core import words
from ivr.core.errors import Refused
from ivr.core.flow import reference
from ivr.store import briefings, callbacks, desk, sealed
from ivr.ops.console.base import FormError, actor, bp, hotline, log, needs
from ivr.store.reads import call_paths
from ivr.store.users import role_at_least


def _agent() -> dict | None:
    return desk.agent_for_user(hotline().db, g.user.name)


def _caller(agent: dict | None) -> dict | None:
    """The connected (or last, not yet wrapped-up) caller's context, as the agent needs it."""
    found = desk.current_caller(hotline().db, agent) if agent else None
    if not found:
        return None
    rules = hotline().rules.rules
    with hotline().db.read() as conn:
        path = call_paths(conn, [found["call_sid"]])[found["call_sid"]]
    lang = found.get("language") or ""
    started = found.get("enqueued_at") or found.get("requested_at")
    waited = found.get("wait_s")
    if waited is None and started is not None:
        waited = int((datetime.now(timezone.utc) - started).total_seconds())
    return {**found, "language_name": words.language(rules.languages, lang),
            "path": path, "waited": waited, "reference": reference(found["call_sid"]),
            "masked": found.get("number_masked") or _masked_caller(found["call_sid"])}


def _masked_caller(call_sid: str) -> str:
    from sqlalchemy import select

    from ivr.store.models import Call

    with hotline().db.read() as conn:
        return conn.execute(select(Call.caller_masked).where(Call.call_sid == call_sid)).scalar() or "unknown"


def _live() -> dict:
    agent = _agent()
    return {"agent": agent, "caller": _caller(agent), "callbacks": callbacks.worklist(hotline().db),
            "agents": desk.statuses(hotline().db) if role_at_least(g.user.role, "ops") else []}


@bp.get("/desk")
@needs("work the desk")
def desk_page(status: int = 200, error: str | None = None):
    incident, published, _versions = briefings.for_active_incident(hotline().db)
    return render_template("console/desk.html", live=_live(), incident=incident, published=published,
                           codes=hotline().rules.rules.agents.wrap_up_codes, statuses=desk.CHOSEN, desk_choices=words.DESK_CHOICES, labels=briefings.LABELS,
                           error=error), status


@bp.get("/desk/live")
@needs("work the desk")
def desk_live():
    """The live part of the desk alone, fetched by console.js every few seconds."""
    return render_template("console/_desk_live.html", live=_live())


def _own_agent() -> dict:
    agent = _agent()
    if agent is None:
        raise FormError("your login is not linked to an agent (ask an admin: ivr agents link NAME --user LOGIN)")
    return agent


@bp.post("/desk/status")
@needs("work the desk")
def desk_status():
    try:
        agent = _own_agent()
        status = request.form.get("status", "")
        if status not in desk.CHOSEN:
            raise FormError(f"status must be one of {', '.join(desk.CHOSEN)}")
        desk.set_status(hotline().db, agent["name"], status, actor=actor())
    except Refused as exc:
        return desk_page(400, f"{exc}. Nothing was changed.")
    flash(f"You are now {words.DESK_CHOICES[status]}.", "ok")
    return redirect(url_for("console.desk_page"), 303)


@bp.post("/desk/wrap-up")
@needs("work the desk")
def desk_wrap_up():
    """Record the outcome of the agent's current (or last) call; the form names the call it was typed for."""
    try:
        agent = _own_agent()
        caller = desk.current_caller(hotline().db, agent)
        if caller is None:
            raise FormError("you have no call to wrap up")
        sent_for = request.form.get("call_sid", "")
        if sent_for and sent_for != caller["call_sid"]:
            raise FormError("that wrap-up was for an earlier call: check the caller shown and send it again")
        desk.wrap_up(hotline().db, agent=agent["name"], call_sid=caller["call_sid"],
                     code=request.form.get("code", ""), note=(request.form.get("note") or "").strip(),
                     codes=hotline().rules.rules.agents.wrap_up_codes)
    except Refused as exc:
        return desk_page(400, f"{exc}. Nothing was changed.")
    log.info("console: %s wrapped up a call as %s", actor(), request.form.get("code"))
    flash("Wrap-up recorded. You are available for the next caller.", "ok")
    return redirect(url_for("console.desk_page"), 303)


@bp.post("/desk/callbacks/<int:callback_id>/call")
@needs("work the desk")
def desk_call_now(callback_id: int):
    """Claim the callback for this agent, then have Twilio ring the agent's phone; the line does the rest."""
    from ivr.core.agent_callbacks import call_now_token
    from ivr.worker.sms import rest_client

    cfg = hotline().config
    try:
        agent = _own_agent()
        if not (cfg.twilio_account_sid and cfg.hotline_number and agent.get("phone")):
            raise FormError("call now needs TWILIO_ACCOUNT_SID, IVR_HOTLINE_NUMBER and the agent's phone number")
        phone = sealed.open_number(hotline().db, agent["phone"])  # DataKeyError: a Refused, nothing claimed
        if callbacks.claim(hotline().db, callback_id, agent["name"]) is None:
            raise FormError(f"callback {callback_id} is not free to call now (taken, closed, or not due yet)")
        base = cfg.public_url or request.url_root.rstrip("/")
        url = (f"{base}/voice/agent/call-now?c={callback_id}&u={agent['name']}"
               f"&t={call_now_token(cfg.secret_key, agent['name'], callback_id)}")
        try:
            call = rest_client(cfg).calls.create(to=phone, from_=cfg.hotline_number, url=url, method="POST")
        except TwilioRestException as exc:
            callbacks.release(hotline().db, callback_id, agent["name"])
            raise FormError(f"Twilio refused the call: {exc.status} {exc.msg}") from None
    except Refused as exc:
        return desk_page(400, f"{exc}. Nothing was changed.")
    log.info("console: %s call now for callback %s (%s)", actor(), callback_id, call.sid)
    flash(f"Your phone ({agent['phone_masked']}) will ring now; answer it to be connected.", "ok")
    return redirect(url_for("console.desk_page"), 303)
