"""The app factory: configuration, the hotline's parts, the blueprints."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from flask import Flask, jsonify
from flask.sessions import SecureCookieSessionInterface

from ivr.config import Config, finalize, from_env
from ivr.hotline import Hotline


def create_app(config: Config | Mapping | None = None) -> Flask:
    """Build the app. `config`: a Config, or overrides (Config field names) on top of the environment."""
    if isinstance(config, Config):
        cfg = config
    else:
        cfg = from_env()
        if config:
            cfg = cfg.with_overrides(**dict(config))
    cfg = finalize(cfg)

    app = Flask(__name__, instance_path=str(cfg.instance_path))
    # Uploads may be large; the voice routes set their own, much smaller limit (webhooks/voice.py).
    app.config.update(SECRET_KEY=cfg.secret_key, MAX_CONTENT_LENGTH=cfg.upload_max_bytes + 1_000_000, IVR=cfg)
    app.session_interface = _NoSessionForTwilio()
    _configure_logging(app)
    app.extensions["ivr"] = Hotline.build(cfg)

    import webhooks.admin_line  # noqa: F401  (adds the admin line's routes to the voice blueprint)
    import webhooks.agent_line  # noqa: F401  (adds the agent line's routes to the voice blueprint)
    from ivr.ops.api import bp as api_bp
    from webhooks.media import bp as media_bp
    from webhooks.voice import bp as voice_bp

    app.register_blueprint(voice_bp)
    app.register_blueprint(media_bp)
    app.register_blueprint(api_bp)
    from ivr.ops.console import init_app as init_console

    init_console(app)

    hotline = app.extensions["ivr"]
    if cfg.jobs_in_app:
        app.before_request(hotline.jobs.ensure_started)

    @app.get("/")
    def index():
        return jsonify(service="breach hotline", voice_url="/voice/incoming", status_callback="/voice/status",
                       fallback_url="/voice/fallback")

    @app.get("/healthz")
    def healthz():
        return _health(app.extensions["ivr"])

    @app.get("/metrics")
    def metrics():
        from ivr.ops.metrics import exposition

        body, content_type = exposition(app.extensions["ivr"])
        return app.response_class(body, mimetype=content_type.split(";")[0], headers={"Content-Type": content_type})

    return app


class _NoSessionForTwilio(SecureCookieSessionInterface):
    """Twilio's requests never carry a session: skip loading and signing one for them (measurably cheaper)."""

    def open_session(self, app, request):
        if request.path.startswith(("/voice/", "/media/")):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _health(hotline: Hotline):
    """Database reachable, rules loaded, an announcement published: 200; anything else: 503 and why."""
    problems = []
    snap = hotline.state.current()
    if not snap.fresh:
        problems.append("database unreachable")
    if not snap.content.spoken:
        problems.append("no announcement published")
    if hotline.rules.last_error is not None:
        problems.append("routing rules file invalid (last good rules in use)")
    if hotline.config.event_writer == "process":
        from ivr.spool.writer import SpoolWriter

        try:
            age = time.time() - (hotline.config.spool_dir / SpoolWriter.HEARTBEAT).stat().st_mtime
        except OSError:
            age = None
        if age is None or age > 10:
            problems.append("spool writer (ivr background) not running: call records wait in the spool")
    body = {"ok": not problems, "problems": problems, "mode": snap.mode,
            "content_version": snap.content.version}
    return jsonify(body), (200 if not problems else 503)


def _configure_logging(app: Flask) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
