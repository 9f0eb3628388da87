"""The API, the console and `ivr report` agree with the OpenAPI document on every parameter: an
out-of-range filter is a 400 (never a 500), and a form field reads a number as JSON would."""
from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from ivr.ops.cli import main
from ivr.store.users import add_user, create_token
from helpers import console_sign_in


@pytest.fixture
def admin(hotline):
    add_user(hotline.db, "ada", "admin", password="correct horse battery", actor="test")
    return {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}


@pytest.mark.parametrize("since", ["740000d", "100000h", "99999999999999999999d", "9999-12-31T23:59:59-23:59x",
                                   "2026-02-30", "2026-12-01T08:00", "20261201", " 24h", "2026-01-01T00:00:00+24:00"])
def test_an_out_of_range_since_is_a_400_everywhere(app, admin, config, since):
    client = app.test_client()
    api = client.get("/api/reports", query_string={"since": since}, headers=admin)
    assert api.status_code == 400 and "since" in api.get_json()["error"]
    console_sign_in(client, "ada", "correct horse battery")
    page = client.get("/console/reports", query_string={"since": since})
    assert page.status_code == 400 and "since" in page.get_data(as_text=True)
    csv = client.get("/console/reports.csv", query_string={"since": since})
    assert csv.status_code == 400 and "since" in csv.get_data(as_text=True)
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path)}
    cli = CliRunner().invoke(main, ["report", "--since", since], env=env, catch_exceptions=False)
    assert cli.exit_code == 1 and "since" in cli.output


@pytest.mark.parametrize("since", ["99999d", "99999h", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
                                   "2999-01-01", "2026-01-01T00:00:00Z", "2016-12-31t23:59:60.123456789z",
                                   "0000-01-01"])
def test_every_since_the_document_allows_is_answered(app, admin, since):
    resp = app.test_client().get("/api/reports", query_string={"since": since}, headers=admin)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["calls"]["total"] >= 0


def test_a_form_number_reads_as_the_same_json_number(app, hotline, admin):
    from ivr.media import tts

    wav = tts.synthesize("Uploaded through the API.", "en", engines=("espeak",)).data
    active = hotline.state.current().content.incident_id
    client = app.test_client()
    as_json = client.post("/api/announcements/tts", headers=admin,
                          json={"lang": "en", "text": "An update.", "reason": "news", "incident_id": float(active)})
    assert as_json.status_code == 201, as_json.get_json()
    as_form = client.post("/api/announcements/upload", headers=admin, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(wav), "statement.wav"), "lang": "en",
                                "incident_id": f"{active}.0", "reason": "news"})
    assert as_form.status_code == 201, as_form.get_json()
    assert as_form.get_json()["incident_id"] == as_json.get_json()["incident_id"] == active


def test_a_blank_since_is_the_default_in_the_console_form_and_a_400_in_the_api(app, admin):
    client = app.test_client()
    api = client.get("/api/reports?since=", headers=admin)  # the document: a span, a date or a time
    assert api.status_code == 400 and "since" in api.get_json()["error"]
    console_sign_in(client, "ada", "correct horse battery")
    assert client.get("/console/reports?since=").status_code == 200  # a form submitted with the field blank
