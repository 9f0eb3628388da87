"""Signing in and out of the console."""
from __future__ import annotations

from datetime import timedelta

from flask import flash, g, redirect, render_template, request, url_for

from ivr.ops.console import auth
from ivr.ops.console.base import bp, hotline, log, needs
from ivr.ops import under_attack
from ivr.store import sign_in_passes
from ivr.ops.console.sign_in_names import shown_name
from ivr.store.audit import audit

FAILED = "Wrong user name or password."
CODE_SPENT = "That unlock code has just been used. Ask an admin for a new one."


@bp.route("/login", methods=["GET", "POST"])
@needs(None)
def login():
    """The sign-in form, throttled per user and address and per user across addresses (see auth.throttled).

    Behind IVR_TRUSTED_PROXIES proxies, remote_addr is the client's address from X-Forwarded-For (ProxyFix)."""
    target = request.values.get("next")
    if request.method == "GET":
        if g.user is not None:
            return redirect(auth.safe_next(target))
        return render_template("console/login.html", next=target)
    db, ip = hotline().db, request.remote_addr or ""
    name, password = request.form.get("name", ""), request.form.get("password", "")
    code = request.form.get("unlock_code", "").strip()
    unlocking = bool(code) and sign_in_passes.unlock_code_valid(db, name, code)
    wait = timedelta(0) if unlocking else auth.throttled(db, name, ip)
    if wait:  # answered at once: a throttled try holds no worker and checks no password
        seconds = max(1, int(wait.total_seconds() + 0.999))
        log.warning("console: sign-in refused for %s from %s: too many failures (wait %d s)",
                    shown_name(db, hotline().config.secret_key, name), ip, seconds)
        return render_template("console/login.html", next=target, name=name, error=(
            f"Too many failed sign-ins for this user. Try again in {_how_long(seconds)}, or ask an admin "
            "for an unlock code (ivr users unlock).")), 429, {"Retry-After": str(seconds)}
    user = auth.check_password(db, name, password)
    if user is None:
        _failed(db, name, ip)
        return render_template("console/login.html", next=target, name=name, error=FAILED), 401
    spend = (lambda conn: sign_in_passes.use_unlock_code(conn, name, code)) if unlocking else None
    if not auth.sign_in(db, user, ip, spend):
        return render_template("console/login.html", next=target, name=name, error=CODE_SPENT), 401
    how = "with an unlock code" if unlocking else ""
    with db.write() as conn:
        audit(conn, actor=user.name, action="console.sign_in", subject=f"user {user.name}",
              to_value=f"from {ip}" + (f" {how}" if how else ""))
    log.info("console: %s (%s) signed in from %s %s", user.name, user.role, ip, how)
    return redirect(auth.safe_next(target), 303)


def _how_long(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} minutes"


def _failed(db, name: str, ip: str) -> None:
    """Count a wrong password; audit a throttle it starts, and raise the alarm when the name's account-wide
    budget has just been used up (an attack from many addresses: log, metric, dashboard banner)."""
    attacked_before = auth.under_attack(db, name)
    auth.record_failure(db, name, ip)
    shown = shown_name(db, hotline().config.secret_key, name)  # never a password typed as the name
    log.warning("console: failed sign-in for %s from %s", shown, ip)
    if auth.throttled(db, name, ip):  # this failure started a throttle: worth a line in the audit log
        with db.write() as conn:
            audit(conn, actor=f"console from {ip}", action="console.sign_in_throttled",
                  subject=f"user {shown}", to_value="too many failed sign-ins")
    if not attacked_before and auth.under_attack(db, name):
        under_attack.started("account", f"console sign-in for {shown}")


@bp.post("/logout")
@needs("sign out")
def logout():
    auth.sign_out(hotline().db)
    log.info("console: %s signed out", g.user.name)
    flash("You are signed out.", "ok")
    return redirect(url_for("console.login"), 303)
