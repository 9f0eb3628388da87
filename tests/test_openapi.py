"""The API does what its OpenAPI document says; /healthz and /metrics tell monitoring the truth."""
from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from ivr.config import PROJECT_ROOT
from ivr.core.rules import load as load_rules
from ivr.ops.api import load_openapi
from ivr.ops.api.document import document_path
from ivr.store import queues
from ivr.store.users import add_user, create_token

DOC = load_openapi()


def check(resp, path: str, method: str):
    """Validate a response against the documented schema for its status."""
    responses = DOC["paths"][path][method]["responses"]
    assert str(resp.status_code) in responses, f"{method.upper()} {path} answered undocumented {resp.status_code}"
    spec = responses[str(resp.status_code)]
    if "$ref" in spec:
        spec = DOC["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
    schema = (spec.get("content", {}).get("application/json") or {}).get("schema")
    if schema is not None:
        Draft202012Validator({**schema, "components": DOC["components"]}).validate(resp.get_json())
    return resp


def test_every_api_route_is_documented(app):
    documented = {(path, m) for path, ops in DOC["paths"].items() for m in ops}
    served = {(document_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == documented


@pytest.fixture
def admin(hotline):
    add_user(hotline.db, "ada", "admin", actor="test")
    return {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}


def test_responses_match_the_document(app, hotline, admin, place_call):
    client = app.test_client()
    place_call(keys=["1", "0"])
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+15555550111", language="en",
                            queue="general", priority=10, reason="callback offered")
    check(client.get("/api/mode", headers=admin), "/mode", "get")
    refused = check(client.post("/api/mode", json={"mode": "live", "reason": "shift"}, headers=admin), "/mode", "post")
    assert refused.status_code == 409  # the go-live check: nobody on the agent line, the setup wording
    check(client.get("/api/preflight", headers=admin), "/preflight", "get")
    check(client.post("/api/mode", json={"mode": "live", "reason": "shift", "override": "a test"}, headers=admin),
          "/mode", "post")
    check(client.post("/api/mode", json={"mode": "party", "reason": "x"}, headers=admin), "/mode", "post")
    check(client.get("/api/mode"), "/mode", "get")
    created = check(client.post("/api/incidents", json={"title": "Second breach", "severity": "critical",
                                                         "exposed": "emails", "reason": "found"}, headers=admin),
                    "/incidents", "post")
    new_id = created.get_json()["id"]
    check(client.post("/api/incidents", json={"title": "x", "severity": "mild", "reason": "x"}, headers=admin),
          "/incidents", "post")
    check(client.patch(f"/api/incidents/{new_id}", json={"severity": "high", "reason": "worse"}, headers=admin),
          "/incidents/{id}", "patch")
    check(client.get("/api/incidents", headers=admin), "/incidents", "get")
    check(client.get("/api/announcements", headers=admin), "/announcements", "get")
    tts = check(client.post("/api/announcements/tts", json={"lang": "en", "text": "An update.", "reason": "news"},
                            headers=admin), "/announcements/tts", "post")
    check(client.post(f"/api/announcements/{tts.get_json()['id']}/publish", json={"reason": "news"}, headers=admin),
          "/announcements/{id}/publish", "post")
    check(client.post(f"/api/announcements/{tts.get_json()['id']}/publish", json={"reason": "again"},
                      headers=admin), "/announcements/{id}/publish", "post")  # 409: awaits approval already
    check(client.get("/api/announcements/awaiting", headers=admin), "/announcements/awaiting", "get")
    check(client.get(f"/api/announcements/{tts.get_json()['id']}", headers=admin), "/announcements/{id}", "get")
    check(client.get("/api/announcements/999999", headers=admin), "/announcements/{id}", "get")
    mine = check(client.post(f"/api/announcements/{tts.get_json()['id']}/approve", json={"reason": "ok"},
                             headers=admin), "/announcements/{id}/approve", "post")
    assert mine.status_code == 409  # the one who asked is no second person
    check(client.post(f"/api/announcements/{tts.get_json()['id']}/override", json={"reason": "urgent"},
                      headers=admin), "/announcements/{id}/override", "post")
    check(client.post("/api/announcements/rollback", json={"lang": "en", "reason": "typo"}, headers=admin),
          "/announcements/rollback", "post")
    check(client.get("/api/callbacks", headers=admin), "/callbacks", "get")
    cb_id = queues.callbacks(hotline.db)[0]["id"]
    check(client.post(f"/api/callbacks/{cb_id}/done", json={"note": "ok", "reason": "called back"}, headers=admin),
          "/callbacks/{id}/done", "post")
    calls = check(client.get("/api/calls", headers=admin), "/calls", "get").get_json()["calls"]
    assert [s["kind"] for s in calls[0]["path"]][:3] == ["call_started", "menu_choice", "menu_choice"]
    silent = check(client.post(f"/api/incidents/{new_id}/activate", json={"reason": "bigger"}, headers=admin),
                   "/incidents/{id}/activate", "post")
    assert silent.status_code == 409  # nothing published for it yet
    activated = check(client.post(f"/api/incidents/{new_id}/activate", json={"reason": "bigger", "carry_over": True},
                                  headers=admin), "/incidents/{id}/activate", "post").get_json()
    assert activated["status"] == "active" and "en/main" in activated["carried_over"]
    stats = check(client.get("/api/stats", headers=admin), "/stats", "get").get_json()
    assert stats["mode"] == "live" and stats["incident"]["severity"] == "high" and stats["calls_last_hour"] >= 1
    assert set(stats["queues"]) == {"fraud", "affected", "general"}
    assert client.get("/api/openapi.json").get_json()["openapi"] == "3.1.0"


def _st_schema():
    """The document as the app serves it with the shipped rules (the tests' rules have the same languages and
    severities), checked as `st run --checks all` checks, with schemathesis.toml."""
    rules = load_rules(PROJECT_ROOT / "routing_rules.yaml")
    config = SchemathesisConfig.from_path(str(PROJECT_ROOT / "schemathesis.toml"))
    config.projects.default.checks.update(included_check_names=["all"])
    return schemathesis.openapi.from_dict(load_openapi(rules.languages, rules.severities), config=config)


AS_ADMIN, ANONYMOUS = _st_schema(), _st_schema()
_admin_token: dict[str, str] = {}  # the running test's, for the auth provider below


@AS_ADMIN.auth(refresh_interval=None)
class _AdminToken:
    def get(self, case, ctx):
        return _admin_token.get("token", "ivr_none_yet")  # asked once at collection, before any test

    def set(self, case, token, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@pytest.fixture
def st_app(app, hotline, place_call):
    """The app, with something for Schemathesis to find (a call, a callback waiting) and an admin's token."""
    place_call(keys=["1", "0"])
    queues.request_callback(hotline.db, call_sid="CA" + "1" * 32, number="+15555550111", language="en",
                            queue="general", priority=10, reason="callback offered")
    add_user(hotline.db, "st", "admin", actor="test")
    _admin_token["token"] = create_token(hotline.db, "st", actor="test")
    return app


# Bounded so that `make test` stays fast: a fixed, derandomized sequence of a few examples per operation,
# besides Schemathesis' coverage cases, sent in-process (WSGI). `st run` for minutes finds what this misses.
BOUNDED = settings(max_examples=8, derandomize=True, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))


@AS_ADMIN.parametrize()
@BOUNDED
def test_the_api_holds_its_document_for_an_admin(st_app, case):
    case.operation.schema.app = st_app  # in-process, also for the checks' own extra requests
    case.call_and_validate(app=st_app)


@ANONYMOUS.parametrize()
@BOUNDED
def test_the_api_holds_its_document_for_anyone(st_app, case):
    case.operation.schema.app = st_app
    case.call_and_validate(app=st_app)


def test_healthz_says_why_it_is_unhealthy(app, hotline):
    from sqlalchemy import update

    from ivr.store.models import Announcement
    from ivr.store.state import bump_content

    client = app.test_client()
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.get_json()["ok"] is True
    with hotline.db.write() as conn:
        conn.execute(update(Announcement).values(status="archived"))
        bump_content(conn)
    bad = client.get("/healthz")
    assert bad.status_code == 503 and bad.get_json()["problems"] == ["no announcement published"]


def test_metrics_report_webhook_latency_calls_queues_and_mode(app, place_call):
    place_call(keys=["9"])
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert re.search(r'ivr_webhook_seconds_count\{route="/incoming"\} [1-9]', body)
    assert 'ivr_mode{mode="message"} 1.0' in body and 'ivr_mode{mode="live"} 0.0' in body
    assert re.search(r'ivr_calls_last_hour\{outcome="ended-no-choice"\} [1-9]', body)
    assert 'ivr_queue_waiting{queue="general"} 0.0' in body and "ivr_callbacks_waiting 0.0" in body
    assert "+1202" not in body  # no personal data


def test_metrics_want_the_bearer_token_when_one_is_set(config):
    from ivr.app import create_app

    app = create_app(config.with_overrides(metrics_token="scrape-secret"))
    try:
        client = app.test_client()
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secrét"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert ok.status_code == 200 and "ivr_mode" in ok.get_data(as_text=True)
    finally:
        app.extensions["ivr"].close()
