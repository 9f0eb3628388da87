"""Two-person publishing: a new statement is not heard by callers until a second person approves it (console,
API, CLI, the admin phone line in test_admin_line.py); nobody approves their own; an admin may override, with a
reason that is audited and flagged on the dashboard."""
from __future__ import annotations

import hashlib

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from conftest import AUTH_TOKEN
from ivr.config import from_env
from ivr.ops.cli import main
from ivr.store import announcements, approvals
from ivr.store.models import Announcement, AuditEntry
from ivr.store.users import add_user, create_token
from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall
from test_console import as_role, audit_rows, page, users  # noqa: F401  (fixtures)

STATEMENT = "Card numbers were taken. Please call your bank today."


def heard_media(result) -> list[str]:
    """The audio a caller was played, by checksum (the file name of each Play)."""
    return [h.url.rsplit("/", 1)[-1].removesuffix(".wav") for h in result.heard if h.kind == "play"]


def state(hotline, announcement_id: int) -> tuple:
    with hotline.db.read() as conn:
        return conn.execute(select(Announcement.status, Announcement.requested_by, Announcement.approved_by,
                                   Announcement.override_reason).where(Announcement.id == announcement_id)).one()


def latest_id(hotline) -> int:
    with hotline.db.read() as conn:
        return conn.execute(select(Announcement.id).order_by(Announcement.id.desc()).limit(1)).scalar()


def test_a_statement_is_not_heard_until_a_second_person_approves_it_in_the_console(hotline, as_role, place_call):
    admin, ops, viewer = as_role("admin"), as_role("ops"), as_role("viewer")
    assert admin.post("/console/announcements/tts", {"lang": "en", "topic": "main", "text": STATEMENT,
                                                     "publish": "yes", "reason": "disclosure"}).status_code == 303
    draft = approvals.awaiting(hotline.db)[0]
    assert (draft["text"], draft["requested_by"]) == (STATEMENT, "ada")
    # Callers (the TwiML of a whole call through the app) do not hear it.
    assert draft["media_sha256"] not in heard_media(place_call(keys=["9"]))
    # The approval view plays exactly the phone-ready file callers will get, and shows the text.
    view = page(ops.get(f"/console/announcements/{draft['id']}/approval"))
    assert f'<audio controls preload="auto" src="/media/{draft["media_sha256"]}.wav"' in view and STATEMENT in view
    media = ops.get(f"/media/{draft['media_sha256']}.wav")  # what a caller's <Play> of it would fetch
    assert hashlib.sha256(media.get_data()).hexdigest() == draft["media_sha256"]
    media.close()
    # The dashboard lists it; `ivr status` and preflight's caller view say so too.
    dash = page(viewer.get("/console/"))
    assert f'id="awaiting-{draft["id"]}"' in dash and "asked for by ada" in dash
    # The one who asked cannot approve it; a viewer may not approve at all. Nothing changes.
    mine = admin.post(f"/console/announcements/{draft['id']}/approve", {"reason": "looks fine"})
    assert mine.status_code == 400 and "a second person must approve it" in page(mine)
    assert viewer.post(f"/console/announcements/{draft['id']}/approve", {"reason": "ok"}).status_code == 403
    assert state(hotline, draft["id"]) == ("draft", "ada", None, None)
    assert draft["media_sha256"] not in heard_media(place_call(keys=["9"]))
    # The second person approves: the next call hears it.
    assert ops.post(f"/console/announcements/{draft['id']}/approve", {"reason": "legal signed"}).status_code == 303
    assert state(hotline, draft["id"]) == ("published", "ada", "otto", None)
    assert heard_media(place_call(keys=["9"])) == [draft["media_sha256"]] * 2
    # Both names are in the audit log.
    (row,) = audit_rows(hotline, "announcement.approve")
    assert (row.actor, row.reason) == ("otto", "legal signed") and "asked for by ada, approved by otto" in row.to_value
    assert f'id="awaiting-{draft["id"]}"' not in page(viewer.get("/console/"))


def test_drafts_awaiting_approval_are_named_by_status_preflight_and_the_api(app, hotline, config):
    row = announcements.create_from_text(hotline.db, config, hotline.rules.rules.languages, lang="en",
                                         topic="details", text="Details to approve.", actor="ada", publish=True)
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path)}
    add_user(hotline.db, "vera", "viewer", actor="test")
    viewer = {"Authorization": "Bearer " + create_token(hotline.db, "vera", actor="test")}
    words = f"en/details version {row['version']} (announcement {row['id']}, asked for by ada) awaits"

    def surfaces() -> dict:
        said = {" ".join(command): " ".join(CliRunner().invoke(main, command, env=env).output.split())
                for command in (["status"], ["preflight"])}
        said["/api/preflight"] = " ".join(app.test_client().get("/api/preflight", headers=viewer)
                                          .get_json()["awaiting_approval"])
        return said

    for surface, said in surfaces().items():
        assert words in said and f"ivr announce approve {row['id']}" in said, (surface, said)
    approvals.approve(hotline.db, row["id"], actor="otto")
    assert not any(words in said for said in surfaces().values())


def test_an_admin_override_needs_a_reason_is_audited_and_flagged_on_the_dashboard(hotline, as_role, place_call):
    admin, ops = as_role("admin"), as_role("ops")
    admin.post("/console/announcements/tts", {"lang": "en", "topic": "main", "text": STATEMENT, "publish": "yes",
                                              "reason": "disclosure"}).close()
    draft = approvals.awaiting(hotline.db)[0]
    assert ops.post(f"/console/announcements/{draft['id']}/override", {"reason": "urgent"}).status_code == 403
    blank = admin.post(f"/console/announcements/{draft['id']}/override", {"reason": "  "})
    assert blank.status_code == 400 and "reason is required" in page(blank)
    assert state(hotline, draft["id"]) == ("draft", "ada", None, None)
    why = "legal unreachable; callers hear the wrong figures"
    assert admin.post(f"/console/announcements/{draft['id']}/override", {"reason": why}).status_code == 303
    assert state(hotline, draft["id"]) == ("published", "ada", "ada", why)
    assert heard_media(place_call(keys=[])) == [draft["media_sha256"]]
    (row,) = audit_rows(hotline, "announcement.override")
    assert (row.actor, row.reason) == ("ada", why) and "two-person publishing overridden" in row.to_value
    dash = page(ops.get("/console/"))
    assert f'id="override-{draft["id"]}"' in dash and why in dash and "published by ada alone" in dash


@pytest.fixture
def api(hotline):
    out = {}
    for name, role in (("vera", "viewer"), ("otto", "ops"), ("ada", "admin"), ("max", "admin")):
        add_user(hotline.db, name, role, actor="test")
        out[name] = {"Authorization": "Bearer " + create_token(hotline.db, name, actor="test")}
    return out


def test_the_api_gives_the_audio_and_checksum_refuses_self_approval_and_non_admin_overrides(app, hotline, api):
    client = app.test_client()
    made = client.post("/api/announcements/tts", json={"lang": "en", "text": STATEMENT, "publish": True,
                                                       "reason": "disclosure"}, headers=api["ada"]).get_json()
    assert (made["status"], made["awaiting_approval"]) == ("draft", True)
    listed = client.get("/api/announcements/awaiting", headers=api["vera"]).get_json()["announcements"]
    assert [a["id"] for a in listed] == [made["id"]]
    one = client.get(f"/api/announcements/{made['id']}", headers=api["otto"]).get_json()
    audio = client.get(one["audio_url"])
    assert hashlib.sha256(audio.get_data()).hexdigest() == one["media_sha256"] and one["text"] == STATEMENT
    audio.close()
    mine = client.post(f"/api/announcements/{made['id']}/approve", json={"reason": "fine"}, headers=api["ada"])
    assert mine.status_code == 409 and "a second person must approve it" in mine.get_json()["error"]
    viewer = client.post(f"/api/announcements/{made['id']}/approve", json={"reason": "ok"}, headers=api["vera"])
    assert viewer.status_code == 403
    ops = client.post(f"/api/announcements/{made['id']}/override", json={"reason": "now"}, headers=api["otto"])
    assert ops.status_code == 403
    assert state(hotline, made["id"]) == ("draft", "ada", None, None)
    done = client.post(f"/api/announcements/{made['id']}/approve", json={"reason": "heard it"},
                       headers=api["max"]).get_json()  # another admin is a second person too
    assert (done["status"], done["requested_by"], done["approved_by"]) == ("published", "ada", "max")
    again = client.post(f"/api/announcements/{made['id']}/approve", json={"reason": "x"}, headers=api["otto"])
    assert again.status_code == 409 and "is published" in again.get_json()["error"]
    # An override through the API, by an admin with a reason.
    second = client.post("/api/announcements/tts", json={"lang": "en", "topic": "advice", "text": "Call your bank.",
                                                         "publish": True, "reason": "advice"},
                         headers=api["ada"]).get_json()
    forced = client.post(f"/api/announcements/{second['id']}/override", json={"reason": "bank lines busy"},
                         headers=api["ada"]).get_json()
    assert (forced["status"], forced["override_reason"]) == ("published", "bank lines busy")


def test_the_cli_approves_as_a_named_user_never_the_one_who_asked(config, hotline):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TTS_ENGINES": "espeak",
           "IVR_MEDIA_CACHE": str(config.media_cache_dir)}
    for name, role in (("dana", "admin"), ("lee", "ops"), ("vic", "viewer")):
        add_user(hotline.db, name, role, actor="test")

    def ivr(*args, ok=True):
        result = CliRunner().invoke(main, list(args), env=env)
        assert (result.exit_code == 0) == ok, result.output
        return " ".join(result.output.split())

    made = ivr("announce", "tts", "--lang", "en", "--text", STATEMENT, "--publish", "--by", "dana")
    ann_id = made.split()[0].lstrip("#")
    assert "awaiting approval" in made
    listing = ivr("announce", "awaiting")
    assert f"announcement {ann_id}, asked for by dana" in listing and STATEMENT in listing and "sha256" in listing
    assert "a second person must approve it" in ivr("announce", "approve", ann_id, "--by", "dana", ok=False)
    assert "vic is viewer" in ivr("announce", "approve", ann_id, "--by", "vic", ok=False)
    assert "'nobody' is not an active user" in ivr("announce", "approve", ann_id, "--by", "nobody", ok=False)
    assert "lee is ops" in ivr("announce", "override", ann_id, "--by", "lee", "--reason", "now", ok=False)
    assert state(hotline, int(ann_id)) == ("draft", "dana", None, None)
    assert "approved by lee" in ivr("announce", "approve", ann_id, "--by", "lee", "--reason", "heard it")
    assert "nothing awaits approval" in ivr("announce", "awaiting")
    # An admin's override from the CLI: the reason is required.
    other = ivr("announce", "tts", "--lang", "en", "--topic", "advice", "--text", "Call your bank.", "--publish",
                "--by", "dana").split()[0].lstrip("#")
    assert "--reason" in ivr("announce", "override", other, "--by", "dana", ok=False)
    out = ivr("announce", "override", other, "--by", "dana", "--reason", "bank lines busy")
    assert "published by dana alone: bank lines busy" in out
    with hotline.db.read() as conn:
        actions = conn.execute(select(AuditEntry.action, AuditEntry.actor).where(
            AuditEntry.action.in_(["announcement.approve", "announcement.override"]))
            .order_by(AuditEntry.id)).all()
    assert actions == [("announcement.approve", "lee"), ("announcement.override", "dana")]


def test_a_never_published_version_is_no_rollback_and_a_heard_one_needs_no_new_approval(hotline, config):
    langs = hotline.rules.rules.languages
    first = approvals.approve(hotline.db, announcements.create_from_text(
        hotline.db, config, langs, lang="en", topic="main", text="First.", actor="ada", publish=True)["id"],
        actor="otto")
    second = approvals.approve(hotline.db, announcements.create_from_text(
        hotline.db, config, langs, lang="en", topic="main", text="Second.", actor="ada", publish=True)["id"],
        actor="otto")
    draft = announcements.create_from_text(hotline.db, config, langs, lang="en", topic="main", text="Draft.",
                                           actor="ada")
    with pytest.raises(announcements.AnnouncementConflict, match="was never published, so it is no rollback"):
        announcements.rollback(hotline.db, lang="en", to_version=draft["version"], actor="ada")
    back = announcements.rollback(hotline.db, lang="en", actor="ada", reason="second was wrong")
    assert back["id"] == first["id"] and back["status"] == "published" and second["status"] == "published"


def test_two_person_publishing_is_on_unless_configured_off(hotline, config):
    assert from_env({}).two_person_publishing and config.two_person_publishing
    assert not from_env({"IVR_TWO_PERSON_PUBLISHING": "0"}).two_person_publishing
    off = config.with_overrides(two_person_publishing=False)
    row = announcements.create_from_text(hotline.db, off, hotline.rules.rules.languages, lang="en", topic="main",
                                         text="Published alone.", actor="ada", publish=True)
    assert (row["status"], row["awaiting_approval"]) == ("published", False)


@pytest.mark.slow
def test_through_ivr_serve_callers_hear_a_statement_only_after_the_second_person_approves(config, hotline, server):
    for name, role in (("ada", "admin"), ("otto", "ops")):
        add_user(hotline.db, name, role, actor="test")
    tokens = {n: {"Authorization": "Bearer " + create_token(hotline.db, n, actor="test")} for n in ("ada", "otto")}
    srv = server(IVR_TTS_ENGINES="espeak")  # IVR_ENV=production: two-person publishing is on by default

    def call():
        return heard_media(SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["9"]).run())

    made = requests.post(srv.staff_url + "/api/announcements/tts", headers=tokens["ada"], timeout=60, json={
        "lang": "en", "text": STATEMENT, "publish": True, "reason": "disclosure"}).json()
    assert made["awaiting_approval"] and made["media_sha256"] not in call()
    mine = requests.post(srv.staff_url + f"/api/announcements/{made['id']}/approve", headers=tokens["ada"],
                         json={"reason": "fine"}, timeout=30)
    assert mine.status_code == 409 and made["media_sha256"] not in call()
    done = requests.post(srv.staff_url + f"/api/announcements/{made['id']}/approve", headers=tokens["otto"],
                         json={"reason": "heard it"}, timeout=30).json()
    assert done["status"] == "published"
    assert call() == [made["media_sha256"]] * 2


def test_a_call_through_the_app_never_hears_a_draft_even_of_another_language(app, hotline, config):
    """The snapshot callers are served from holds published versions only."""
    row = announcements.create_from_text(hotline.db, config, hotline.rules.rules.languages, lang="es",
                                         topic="main", text="Borrador.", actor="ada", publish=True)
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=["3", "9"]).run()
    assert row["media_sha256"] not in heard_media(result)
    assert "Borrador." not in " ".join(result.said())
