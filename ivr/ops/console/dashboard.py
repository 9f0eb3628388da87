"""The dashboard: the mode and its one switch, the incident, what callers hear, and live figures."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flask import flash, redirect, render_template, request, session, url_for

from ivr.ops import caller_view, supervisor, under_attack
from ivr.ops.console import auth, charts, realtime
from ivr.ops.console.base import FormError, actor, bp, hotline, log, needs, reason, when, who_to_me
from ivr.ops.health import spool_problems
from ivr.ops.preflight import PreflightFailed, switch_mode
from ivr.store import reads as queries
from ivr.store.models import MODES, TOPICS, utcnow
from ivr.store.state import get_mode

DAY, HOUR, FIVE = timedelta(hours=24), timedelta(hours=1), timedelta(minutes=5)


def _slots_to_now(now: datetime, slot: timedelta, n: int) -> datetime:
    """The start of `n` slots on round clock times, the last one holding `now`."""
    seconds = int(slot.total_seconds())
    current = int(now.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(current - seconds * (n - 1), timezone.utc)


def now_figures() -> dict:
    """The dashboard's first screen: queues, agents, the mode, what needs attention (ivr/ops/supervisor.py,
    the reading GET /api/supervisor shows too)."""
    db, now, rules = hotline().db, utcnow(), hotline().rules.rules
    view = caller_view.of_hotline(hotline())  # what callers get now, and the go-live check
    board = supervisor.build(hotline(), view, now)
    # Nothing published on a topic: the one reading every surface shares (ivr/core/caller_now.py).
    missing = [(t.lang, t.topic) for t in (view.now.stand_ins() if view.now else ()) if t.spoken is None]
    with db.read() as conn:
        people = queries.presence(conn)
        in_progress, last_hour = queries.call_counts(conn, now)
    return {
        "board": board,
        "mode": board.mode,
        "now": view.now,
        "preflight": view.problems,
        "people": people,
        "silent": len(missing) == len(rules.languages) * len(TOPICS),  # nothing published in any language
        "warnings": realtime.warnings(board.mode[0], people, missing,
                                      {code: lang.name for code, lang in rules.languages.items()}),
        "spool_problems": spool_problems(hotline()),  # call records lost or late: what /healthz says
        "attacks": under_attack.sentences(under_attack.now(hotline())),  # staff doors under attack now
        "in_progress": in_progress,
        "last_hour": last_hour,
        "queues": queries.queue_summary(db),
    }


def more_figures(live: dict) -> dict:
    """Below the first screen: the incident, what each key gets, and the charts."""
    db, now, view = hotline().db, utcnow(), live["now"]
    five, hour = _slots_to_now(now, FIVE, 24), _slots_to_now(now, HOUR, 24)
    with db.read() as conn:
        incident = queries.active_incident(conn)
        per5 = queries.calls_per_slot(conn, five, 300, 24)
        total, lost = queries.abandoned_per_slot(conn, hour, 3600, 24)
        choices = queries.menu_choices(conn, now - DAY)
    busiest = max(range(len(per5)), key=per5.__getitem__)
    n_calls, n_lost = sum(total), sum(lost)
    recent = (f"{sum(per5)} calls in the last 2 hours; busiest 5 minutes from "
              f"{(five + FIVE * busiest):%H:%M} UTC with {per5[busiest]} calls." if sum(per5) else
              "No calls in the last 2 hours.")
    return {
        "incident": incident,
        "stand_in_of": {t.name: t.stand_in for t in view.stand_ins()} if view else {},
        "abandon_rate": f"{100 * n_lost / n_calls:.0f}%" if n_calls else "no calls",
        "charts": [
            charts.timeline("Calls per 5 minutes, last 2 hours (UTC)", per5, five, FIVE, now,
                            tick_every=timedelta(minutes=15), summary=recent),
            charts.timeline("Calls per hour, and how many were abandoned, last 24 hours (UTC)", total, hour, HOUR,
                            now, tick_every=timedelta(hours=3), overlay=lost, overlay_name="abandoned",
                            summary=f"{n_lost} of {n_calls} calls in 24 hours abandoned while listening or queued."),
            charts.rows("Menu choices, last 24 hours", choices,
                        summary="; ".join(f"{label}: {n}" for label, n in choices) or "No menu choices yet."),
        ],
    }


def live_figures() -> dict:
    """Everything the dashboard shows."""
    live = now_figures()
    return {**live, **more_figures(live)}


def _published() -> list:
    with hotline().db.read() as conn:
        incident = queries.active_incident(conn)
        return queries.published_announcements(conn, incident.id) if incident else []


def _pending(live: dict) -> tuple[str | None, dict]:
    """A switch sent with an expired session (auth.to_login kept it): say plainly it was not made."""
    pending = session.pop(auth.PENDING_SWITCH, None)
    if not pending or pending.get("mode") not in MODES:
        return None, {}
    mode, _, by = live["mode"]
    wanted = pending["mode"]
    now = (f"The hotline is in {wanted} mode anyway now (set by {who_to_me(by)})." if mode == wanted else
           f"The hotline is still in {mode} mode. Your reason is filled in below: tick the box and press the "
           "switch again if you still want it.")
    return f"Your switch to {wanted} mode was not made: your session had expired before you sent it. {now}", pending


def _page(status: int = 200, error: str | None = None):
    live = live_figures()
    pending, kept = _pending(live) if not error else (None, {})
    return render_template("console/dashboard.html", live=live, published=_published(), modes=MODES,
                           error=error, pending=pending, form=kept or request.form), status


@bp.get("/")
@needs("see the hotline")
def dashboard():
    return _page()


@bp.get("/live")
@needs("see the hotline")
def live():
    """The dashboard's live parts alone, fetched by console.js: `part=now` the first screen (every
    CONSOLE_NOW_SECONDS), `part=more` the rest (every CONSOLE_REFRESH_SECONDS), neither both."""
    part = request.args.get("part", "all")
    if part not in ("now", "more", "all"):
        return "part must be now, more or all", 400
    live = now_figures() if part == "now" else live_figures()
    return render_template("console/_live.html", live=live, parts=part)


@bp.post("/mode")
@needs("switch the mode")
def mode():
    """Flip the hotline between message and live mode: confirmed, with a reason, audited."""
    form = request.form
    db = hotline().db
    try:
        why = reason(form)
        if form.get("confirm") != "yes":
            raise FormError("tick the box to confirm the switch: it changes what every caller hears")
        current, at, by = get_mode(db)
        if form.get("expected", current) != current:
            raise FormError(f"the hotline was switched to {current} mode by {who_to_me(by)} meanwhile "
                            f"(at {when(at)}); check the dashboard and decide again")
        before, after, overridden = switch_mode(
            db, form.get("mode", ""), reason=why, actor=actor(), override=form.get("override"),
            problems_for_live=lambda: caller_view.of_hotline(hotline()).problems,
            how_to_override="say in \"Override the go-live check\" why it is fine")
    except PreflightFailed as exc:
        return _page(400, str(exc).rstrip(".") + ". Nothing was changed.")
    except ValueError as exc:  # FormError, or set_mode's own refusal
        return _page(400, f"{exc}. Nothing was changed.")
    log.info("console: %s switched the mode %s -> %s", actor(), before, after)
    overrode = f" The go-live check's {len(overridden)} problem(s) were overridden (audited)." if overridden else ""
    flash((f"The hotline is now in {after} mode." if before != after else
           f"The hotline was already in {after} mode.") + overrode, "ok")
    return redirect(url_for("console.dashboard"), 303)
