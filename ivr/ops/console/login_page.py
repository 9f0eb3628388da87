"""Signing in and out of the console."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ivr.ops.console import auth
from ivr.ops.console.base import bp, hotline, log, needs
from ivr.ops.console.sign_in_names import shown_name
from ivr.store.audit import audit

FAILED = "Wrong user name or password."


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
    wait = auth.throttled(db, name, ip)
    if wait:
        log.warning("console: sign-in refused for %s from %s: too many failures (wait %d s)",
                    shown_name(db, hotline().config.secret_key, name), ip, wait.total_seconds())
        minutes = max(1, -(-int(wait.total_seconds()) // 60))
        return render_template("console/login.html", next=target, name=name,
                               error=f"Too many failed sign-ins for this user. Wait {minutes} "
                                     f"minute{'s' if minutes != 1 else ''} and try again."), 429
    user = auth.check_password(db, name, password)
    if user is None:
        auth.record_failure(db, name, ip)
        shown = shown_name(db, hotline().config.secret_key, name)  # never a password typed as the name
        log.warning("console: failed sign-in for %s from %s", shown, ip)
        if auth.throttled(db, name, ip):  # this failure started a throttle: worth a line in the audit log
            with db.write() as conn:
                audit(conn, actor=f"console from {ip}", action="console.sign_in_throttled",
                      subject=f"user {shown}", to_value="too many failed sign-ins")
        return render_template("console/login.html", next=target, name=name, error=FAILED), 401
    auth.sign_in(db, user, ip)
    with db.write() as conn:
        audit(conn, actor=user.name, action="console.sign_in", subject=f"user {user.name}", to_value=f"from {ip}")
    log.info("console: %s (%s) signed in from %s", user.name, user.role, ip)
    return redirect(auth.safe_next(target), 303)


@bp.post("/logout")
@needs("sign out")
def logout():
    auth.sign_out(hotline().db)
    log.info("console: %s signed out", g.user.name)
    flash("You are signed out.", "ok")
    return redirect(url_for("console.login"), 303)
