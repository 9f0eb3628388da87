"""The app factory: configuration, the hotline's parts, the blueprints."""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from flask import Flask, jsonify, request
from flask.sessions import NullSession, SecureCookieSessionInterface, SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from ivr.config import Config, finalize, from_env
from ivr.hotline import Hotline
from ivr.ops.health import register_health
from ivr.ops.logs import register_logging


PARTS = ("all", "callers", "staff")


def create_app(config: Config | Mapping | None = None, part: str = "all") -> Flask:
    """Build the app. `config`: a Config, or overrides (Config field names) on top of the environment.

    `part`: "callers" is what Twilio calls (/voice, /media) and the probes, nothing else: `ivr serve` runs it
    in a worker pool of its own, so no staff request can hold a caller's worker (a bulkhead). "staff" is the
    console, the API, /metrics, the probes, and /media (the console plays announcements). "all": both."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    cfg = _resolve(config)
    if part == "callers":
        return create_caller_app(cfg)
    app = Flask(__name__, instance_path=str(cfg.instance_path))
    # Uploads may be large; the voice routes set their own, much smaller limit (webhooks/twilio_view.py).
    app.config.update(SECRET_KEY=cfg.secret_key, MAX_CONTENT_LENGTH=cfg.upload_max_bytes + 1_000_000, IVR=cfg)
    app.session_interface = _NoSessionForTwilio()
    register_logging(app, cfg)
    app.extensions["ivr"] = Hotline.build(cfg)
    if part in ("all", "callers"):
        register_twilio_webhooks(app)
    if part in ("all", "staff"):
        register_api(app)
        register_console(app)
        register_body_limits(app)
        if part == "staff":
            register_media(app)
    register_monitoring(app, routes=part != "callers")
    register_health(app)
    register_jobs(app)
    register_wsgi_layers(app, cfg)
    return app


def create_caller_app(cfg: Config) -> Flask:
    """The caller pool's app (`ivr.wsgi:callers`): what Twilio calls (/voice, /media) and the probes, and
    nothing callers do not need: no session (a shared null one: Twilio's requests carry none), no secret
    key, no console, API or staff hooks. Its figures are counted here and served by the staff pool."""
    app = CallerFlask(__name__, instance_path=str(cfg.instance_path))
    app.config.update(MAX_CONTENT_LENGTH=cfg.upload_max_bytes + 1_000_000, IVR=cfg)  # as the full app's
    register_logging(app, cfg)
    app.extensions["ivr"] = Hotline.build(cfg)
    register_twilio_webhooks(app)
    register_monitoring(app, routes=False)
    register_health(app)
    register_jobs(app)
    register_wsgi_layers(app, cfg)
    return app


def _resolve(config: Config | Mapping | None) -> Config:
    if isinstance(config, Config):
        return finalize(config)
    cfg = from_env()
    return finalize(cfg.with_overrides(**dict(config)) if config else cfg)


def register_wsgi_layers(app: Flask, cfg: Config) -> None:
    """What runs in front of Flask, once every route and hook is registered: the caller's webhooks answered
    without Flask's machinery (webhooks/direct.py), and outside it the trusted proxies' addresses."""
    if "voice.incoming" in app.view_functions:
        from webhooks.direct import DirectTwilioRoutes

        app.wsgi_app = DirectTwilioRoutes(app, app.wsgi_app)
    register_trusted_proxies(app, cfg)


def register_trusted_proxies(app: Flask, cfg: Config) -> None:
    """Behind IVR_TRUSTED_PROXIES proxies, remote_addr is the client's address as the last N proxies recorded
    it in X-Forwarded-For (one entry each, counted from the right); what a client wrote there itself is never
    believed. Sign-in throttling, the logs and the audit see that address. Scheme and host stay as
    received: Twilio's signatures are checked against IVR_PUBLIC_URL, not against headers."""
    if cfg.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.trusted_proxies, x_proto=0, x_host=0)


def register_twilio_webhooks(app: Flask) -> None:
    """Everything Twilio calls: the caller routes, the admin and agent lines, and the audio they play."""
    from ivr.store.announcements import ensure_hold_tone
    from webhooks import admin_line, agent_callbacks, agent_line, errors, media, sms, voice

    for bp in (voice.bp, admin_line.bp, agent_line.bp, agent_callbacks.bp, media.bp, sms.bp):
        app.register_blueprint(bp)
    errors.register(app)  # every error answer under /voice/ is TwiML
    hotline = app.extensions["ivr"]
    hotline.hold_tone = ensure_hold_tone(hotline.db, hotline.config.media_cache_dir)  # never in a call


# The only staff routes that take a recording; every other console form and API document is far smaller.
UPLOAD_ENDPOINTS = frozenset({"api.announcements_upload", "console.announcement_upload"})
FORM_MAX_BYTES = 1_000_000  # the largest form is the rules text (200,000 characters, ivr/core/yaml_text.py)


def register_body_limits(app: Flask) -> None:
    """A request body bounded per route: an upload up to IVR_UPLOAD_MAX_BYTES (the blueprints' 413 says so),
    anything else FORM_MAX_BYTES: refused here, before any of it is read, saying which limit it passed. The
    voice routes set their own, smaller limit (webhooks/twilio_view.py)."""

    @app.before_request
    def _bound_the_body():
        if request.endpoint in UPLOAD_ENDPOINTS:
            return None
        request.max_content_length = FORM_MAX_BYTES  # a body without Content-Length stops being read there
        if (request.content_length or 0) <= FORM_MAX_BYTES:
            return None
        message = f"the request is larger than {FORM_MAX_BYTES // 1_000_000} MB, the limit for all but an upload"
        if request.blueprint == "console":
            from ivr.ops.console.base import page_error

            return page_error(413, "Too large", f"{message[0].upper()}{message[1:]}. Nothing was stored.")
        return jsonify(error=message), 413


def register_media(app: Flask) -> None:
    """The announcement audio alone, for the console's players (Twilio fetches it from the caller pool)."""
    from webhooks import media

    app.register_blueprint(media.bp)


def register_api(app: Flask) -> None:
    from ivr.ops.api import bp

    app.register_blueprint(bp)


def register_console(app: Flask) -> None:
    from ivr.ops.console import init_app
    from ivr.ops.console.sign_in_limit import init_sign_in_limit

    init_app(app)
    init_sign_in_limit(app)


def register_monitoring(app: Flask, routes: bool = True) -> None:
    """What tells people about the hotline: the index, /metrics (the probes: ivr/ops/health.py)."""
    from ivr.ops.metrics import SpoolMetrics

    app.extensions["ivr"].recorder.observer = SpoolMetrics()  # what the spool holds and loses, counted
    app.extensions["ivr"].recorder.open_spool()  # its disk reserved before the disk can fill

    if not routes:  # the caller pool: its figures are counted here, and served by the staff pool's /metrics
        return

    @app.get("/")
    def index():
        return jsonify(service="breach hotline", voice_url="/voice/incoming", status_callback="/voice/status",
                       fallback_url="/voice/fallback")

    @app.get("/metrics")
    def metrics():
        from ivr.ops.metrics import exposition

        token = app.config["IVR"].metrics_token  # when set, scrapers must send it: the figures are not public
        if token and not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                             f"Bearer {token}".encode()):
            return jsonify(error="authentication required: Authorization: Bearer <IVR_METRICS_TOKEN>"), 401, {
                "WWW-Authenticate": 'Bearer realm="metrics"'}
        body, content_type = exposition(app.extensions["ivr"])
        return app.response_class(body, mimetype=content_type.split(";")[0], headers={"Content-Type": content_type})


def register_jobs(app: Flask) -> None:
    """Work background jobs in each web worker, when this process is meant to (IVR_JOBS_IN_APP)."""
    hotline = app.extensions["ivr"]
    if hotline.config.jobs_in_app:
        app.before_request(hotline.jobs.ensure_started)


class _NoSessions(SessionInterface):
    """One null session for every request: nothing to open, sign or save (a session cannot be written)."""

    _null = NullSession()

    def open_session(self, app, request):
        return self._null

    def save_session(self, app, session, response):  # pragma: no cover - Flask skips null sessions
        pass


class CallerFlask(Flask):
    """Flask for the caller pool: no sessions at all, and no URL adapter for the app context of each request
    (nothing here builds a URL outside a request: TwiML's URLs are ours, made by webhooks/twiml.py)."""

    session_interface = _NoSessions()

    def create_url_adapter(self, request):
        return None if request is None else super().create_url_adapter(request)


class _NoSessionForTwilio(SecureCookieSessionInterface):
    """Twilio's requests never carry a session: skip loading and signing one for them (measurably cheaper)."""

    def open_session(self, app, request):
        if request.path.startswith(("/voice/", "/media/")):
            return self.make_null_session(app)
        return super().open_session(app, request)
