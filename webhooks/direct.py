"""The caller's webhooks answered straight from the WSGI environ, in front of Flask.

A caller's webhook is small: a signed, urlencoded POST to a route we know exactly. Flask's machinery around
it (the request and app contexts, URL matching, the response object, the hooks) cost about a third of the
worker's time per webhook under gunicorn, more than the hotline's own work (docs/performance.md). So this
middleware looks the path up in a table of the routes registered with `twilio_route(bp, direct=True)`
(webhooks/voice.py) and answers it with the route's own code (`TwilioRoute.answer`, the code the Flask view
runs too, so the bytes are the same). Anything it does not recognise goes to Flask unchanged: another path
or method (HEAD, OPTIONS), a body that is chunked, too large or not urlencoded, and so every error answer
(webhooks/errors.py).

What Flask would have done around such a request is done here, and nothing else may be: the app-wide hooks
are checked when the app is built (`HOOKS`), so a new one fails at start instead of being skipped for callers.
Flask's signals (request_started, request_finished) are not sent for these requests: nothing here listens to
them, and tests/test_direct_routes.py uses that to tell which path answered.
"""
from __future__ import annotations

import logging

from flask import Flask

from ivr.ops.logs import in_request, request_id
from webhooks.errors import safe_twiml
from webhooks.params import is_plain, parse_urlencoded, plain_params
from webhooks.security import is_signed
from webhooks.twilio_view import FORBIDDEN

log = logging.getLogger("webhooks.voice")

TWIML_TYPE, TEXT_TYPE = "text/xml; charset=utf-8", "text/plain; charset=utf-8"  # as Flask's mimetypes give
STATUS = {200: "200 OK", 403: "403 FORBIDDEN"}  # Werkzeug's spelling

# Every app-wide hook Flask would run around a request, and why skipping it for a direct route changes
# nothing (or where this module does its part). Keyed by the function's qualified name.
HOOKS = {
    "before-request": {
        "register.<locals>._unrouted": "the API's 404/405 in JSON: only under /api/",
        "Limiter._check_request_limit": "Flask-Limiter: only the console's sign-in has a limit",
        "register_body_limits.<locals>._bound_the_body": "staff bodies; a direct route has its own, smaller limit",
        "JobWorker.ensure_started": "run here (IVR_JOBS_IN_APP)",
    },
    "after-request": {
        "Limiter.__inject_headers": "rate-limit headers: only where a limit applied",
        "register_logging.<locals>._tag_request": "done here: the route for the access log, X-Request-Id",
    },
    "teardown-request": {"Limiter.__release_context": "Flask-Limiter's per-request state: none was made"},
    "app context teardown": {},
    "URL value preprocessor": {},
}


def _name(func) -> str:
    func = getattr(func, "func", func)  # a functools.partial
    return getattr(func, "__qualname__", repr(func))


def check_hooks(app: Flask) -> None:
    """Refuse to start with an app-wide hook this module does not know: it would be skipped for callers."""
    registered = {"before-request": app.before_request_funcs.get(None, []),
                  "after-request": app.after_request_funcs.get(None, []),
                  "teardown-request": app.teardown_request_funcs.get(None, []),
                  "app context teardown": app.teardown_appcontext_funcs,
                  "URL value preprocessor": app.url_value_preprocessors.get(None, [])}
    for kind, funcs in registered.items():
        unknown = [_name(f) for f in funcs if _name(f) not in HOOKS[kind]]
        if unknown:
            raise RuntimeError(f"{kind} hook(s) {', '.join(unknown)} would not run for the caller's webhooks "
                               "answered by webhooks/direct.py: add them to its HOOKS, saying why")


class DirectTwilioRoutes:
    """WSGI middleware: the direct routes answered here, every other request passed to `flask_wsgi`."""

    def __init__(self, app: Flask, flask_wsgi):
        check_hooks(app)
        self.flask_wsgi = flask_wsgi
        self.hotline = app.extensions["ivr"]
        cfg = self.hotline.config
        self.json_logs = cfg.log_format == "json"
        self.start_jobs = self.hotline.jobs.ensure_started if cfg.jobs_in_app else None
        self._hooks = [(funcs, len(funcs.get(None, ()))) for funcs in
                       (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)]
        self.routes = {}  # "/voice/incoming" -> its TwilioRoute, from the URL map (the one list of routes)
        for rule in app.url_map.iter_rules():
            route = getattr(app.view_functions.get(rule.endpoint), "twilio_route", None)
            if route is not None and not rule.arguments:
                self.routes[rule.rule] = route

    def __call__(self, env: dict, start_response):
        route = self.routes.get(env.get("PATH_INFO"))
        if (route is None or env.get("REQUEST_METHOD") not in route.methods or self._hooks_changed()
                or not is_plain(env, self.hotline.config.max_body_bytes)):
            return self.flask_wsgi(env, start_response)
        env["ivr.route"] = env["PATH_INFO"]  # the access log's route, as Flask's rule would give it
        params = None
        with in_request(env):
            try:
                params = plain_params(env)
                if self.start_jobs is not None:
                    self.start_jobs()
                status, body = route.answer(self.hotline, env, lambda: params)
            except Exception:  # outside the route's own net (a body that could not be read): as Flask's 500
                log.exception("voice route %s failed outside its answer", env["PATH_INFO"])
                status, body = self._after_a_failure(env, params)
        data = body.encode()
        headers = [("Content-Type", TWIML_TYPE if status == 200 else TEXT_TYPE), ("Content-Length", str(len(data)))]
        if self.json_logs:
            headers.append(("X-Request-Id", request_id(env)))
        start_response(STATUS[status], headers)
        return [data]

    def _hooks_changed(self) -> bool:
        """A hook added after the app was built (check_hooks saw the app as built): Flask runs it."""
        return any(len(funcs.get(None, ())) != n for funcs, n in self._hooks)

    def _after_a_failure(self, env: dict, params) -> tuple[int, str]:
        """What webhooks/errors.py answers for a 500: the safe reply when signed, else 403; a body that
        could not be read cannot be checked: a signature header is enough, as for one over the limit."""
        hotline = self.hotline
        if not hotline.config.validate_signatures:
            signed = True
        elif params is None:
            signed = bool(env.get("HTTP_X_TWILIO_SIGNATURE"))
        else:
            signed = is_signed(env, params.form, hotline.validator, hotline.config.public_url)
        if not signed:
            return 403, FORBIDDEN
        return 200, safe_twiml(hotline, (parse_urlencoded(env.get("QUERY_STRING", "")).get("l") or [None])[0])
