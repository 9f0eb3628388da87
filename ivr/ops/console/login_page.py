"""Signing in and out of the console."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from ivr.ops.console import auth
from ivr.ops.console.base import bp, hotline, log, needs

FAILED = "Wrong user name or password."


@bp.route("/login", methods=["GET", "POST"])
@needs(None)
def login():
    """The sign-in form; five failures for a user from one address in 15 minutes lock that pair out."""
    target = request.values.get("next")
    if request.method == "GET":
        if g.user is not None:
            return redirect(auth.safe_next(target))
        return render_template("console/login.html", next=target)
    db, ip = hotline().db, request.remote_addr or ""
    name, password = request.form.get("name", ""), request.form.get("password", "")
    if auth.throttled(db, name, ip):
        log.warning("console: sign-in refused for %r from %s: too many failures", name[:120], ip)
        minutes = int(auth.FAILURE_WINDOW.total_seconds() // 60)
        return render_template("console/login.html", next=target, name=name,
                               error=f"Too many failed sign-ins for this user from your address. "
                                     f"Wait {minutes} minutes and try again."), 429
    user = auth.check_password(db, name, password)
    if user is None:
        auth.record_failure(db, name, ip)
        log.warning("console: failed sign-in for %r from %s", name[:120], ip)
        return render_template("console/login.html", next=target, name=name, error=FAILED), 401
    auth.sign_in(db, user, ip)
    log.info("console: %s (%s) signed in from %s", user.name, user.role, ip)
    return redirect(auth.safe_next(target), 303)


@bp.post("/logout")
@needs("viewer")
def logout():
    auth.sign_out(hotline().db)
    log.info("console: %s signed out", g.user.name)
    flash("You are signed out.", "ok")
    return redirect(url_for("console.login"), 303)
