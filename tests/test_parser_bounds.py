"""Every parser a stranger or a viewer can feed is bounded before it runs: YAML depth and length, JSON depth,
and the body of each request by its route. A refusal says why and changes nothing; never a 500."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from helpers import console_sign_in
from ivr.core.yaml_text import MAX_CHARS, MAX_DEPTH
from ivr.ops.cli import main
from ivr.store.users import add_user, create_token

PASSWORD = "correct horse battery staple"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def viewer(app, hotline):
    add_user(hotline.db, "vera", "viewer", actor="test", password=PASSWORD)
    client = app.test_client()
    assert console_sign_in(client, "vera", PASSWORD).status_code == 303
    with client.session_transaction() as sess:
        client.csrf = sess["csrf"]
    return client


@pytest.mark.parametrize("text", [nested(900), nested(24_990), "rules:\n" + "".join(
    "  " * i + "- a:\n" for i in range(1, 40))], ids=["depth-900", "depth-24990", "block-style"])
def test_the_console_refuses_deeply_nested_rules_naming_the_limit(viewer, text):
    resp = viewer.post("/console/rules/validate", data={"text": text, "csrf_token": viewer.csrf})
    assert resp.status_code == 200
    assert f"nested more than {MAX_DEPTH} levels deep" in resp.get_data(as_text=True)


def test_rules_check_refuses_a_document_too_long_or_too_deep_before_reading_it(tmp_path, monkeypatch):
    monkeypatch.setenv("IVR_ENV", "development")
    monkeypatch.setenv("IVR_INSTANCE_PATH", str(tmp_path / "instance"))
    for text, says in ((nested(5000), "nested more than"), ("# " + "x" * MAX_CHARS, "longer than")):
        path = tmp_path / "rules.yaml"
        path.write_text(text)
        result = CliRunner().invoke(main, ["rules", "check", str(path)])
        assert result.exit_code == 1 and says in result.output, result.output


def test_the_api_refuses_json_nested_too_deep_with_a_400(app, hotline):
    add_user(hotline.db, "otto", "ops", actor="test")
    auth = {"Authorization": "Bearer " + create_token(hotline.db, "otto", actor="test"),
            "Content-Type": "application/json"}
    client = app.test_client()
    for body in ('{"mode": ' + nested(100_000) + ', "reason": "x"}', '{"mode": ' + nested(200) + "}"):
        resp = client.post("/api/mode", data=body, headers=auth)
        assert resp.status_code == 400 and "nests deeper than" in resp.get_json()["error"]
    assert client.get("/api/mode", headers=auth).get_json()["mode"] == "message"  # nothing changed


def test_a_body_is_bounded_by_its_route(app, viewer, hotline):
    """A form or a JSON document is refused past a megabyte (413); only the upload routes take more."""
    big = "x" * 1_100_000
    resp = viewer.post("/console/rules/validate", data={"text": big, "csrf_token": viewer.csrf})
    assert resp.status_code == 413 and "larger than 1 MB, the limit for all but an upload. Nothing was stored" \
        in resp.get_data(as_text=True)
    add_user(hotline.db, "ada", "admin", actor="test")
    auth = {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}
    resp = app.test_client().post("/api/mode", json={"mode": "live", "reason": big}, headers=auth)
    assert resp.status_code == 413 and "larger than 1 MB" in resp.get_json()["error"]
    # The upload routes, which take a recording up to IVR_UPLOAD_MAX_BYTES, are still the ones the app has.
    from ivr.app import UPLOAD_ENDPOINTS

    assert UPLOAD_ENDPOINTS <= set(app.view_functions)

