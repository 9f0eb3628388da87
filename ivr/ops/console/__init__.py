"""The web console for ops and admins: server-rendered pages under /console (Flask + Jinja, no front-end build)."""
from __future__ import annotations

from datetime import timedelta

from flask import Flask

SESSION_LIFETIME = timedelta(hours=8)  # idle time allowed; the server enforces it too (ivr/ops/console/auth.py)
SESSION_MAX = timedelta(hours=24)  # however active, a session ends a day after sign-in


def init_app(app: Flask) -> None:
    """Register the console and make its session cookie safe: HttpOnly, SameSite=Lax, and Secure everywhere
    but in development (`make run` on http://127.0.0.1) unless the public URL is https there too."""
    from ivr.ops.console import pages  # noqa: F401  (adds every page's routes to the blueprint)
    from ivr.ops.console.base import bp

    cfg = app.config["IVR"]
    lifetime = app.config.setdefault("CONSOLE_SESSION_LIFETIME", SESSION_LIFETIME)
    app.config.setdefault("CONSOLE_SESSION_MAX", SESSION_MAX)
    app.config.setdefault("CONSOLE_REFRESH_SECONDS", 15)  # the charts and tables below the first screen
    app.config.setdefault("CONSOLE_NOW_SECONDS", 2)  # the first screen: a change shows within 5 s
    app.config.update(
        SESSION_COOKIE_NAME="ivr_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not cfg.dev or cfg.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=lifetime,  # the browser drops the cookie when the server stops honouring it
    )
    app.register_blueprint(bp)
