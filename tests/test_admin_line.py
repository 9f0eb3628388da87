"""The admin phone line: PIN, record, hear it back, publish; the recording fetched only from allowed hosts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from helpers import approved

from ivr.media import tts
from ivr.store import approvals
from ivr.store.models import Announcement, AuditEntry, Job, utcnow
from ivr.tools.simulate import FlaskTransport, SimulatedCall
from ivr.store.users import add_user
from stubs import StubHost, basic_auth

ACCOUNT = "AC" + "a" * 32
REC_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/RE{'b' * 32}"
DELETE_PATH = REC_PATH + ".json"


@pytest.fixture(scope="module")
def recording():
    return tts.synthesize("This is the chief executive. Please change your password today.", "en",
                          engines=("espeak",)).data


@pytest.fixture
def twilio_host(recording):
    """Twilio's API: the recording's media, and its deletion (Recording resource: DELETE .../{Sid}.json, 204;
    tests/test_recording_delete.py models the rest of it)."""
    host = StubHost({REC_PATH: (200, {"Content-Type": "audio/x-wav"}, recording), DELETE_PATH: (204, {}, b"")})
    yield host
    host.close()


@pytest.fixture
def admin_app(config, twilio_host):
    from ivr.app import create_app

    cfg = config.with_overrides(twilio_account_sid=ACCOUNT, recording_origins=(twilio_host.origin,),
                                twilio_api_url=twilio_host.origin)
    app = create_app(cfg)
    add_user(app.extensions["ivr"].db, "dana", "admin", actor="test", phone_pin="482916")
    add_user(app.extensions["ivr"].db, "vic", "viewer", actor="test", phone_pin="111111")
    yield app
    app.extensions["ivr"].close()


def admin_call(app, keys, recording_url=None):
    call = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys, recording_url=recording_url,
                         caller="+15555559876")
    return call.run("/voice/admin")


def audits(hotline, prefix):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.to_value)
                            .where(AuditEntry.action.like(prefix + "%")).order_by(AuditEntry.id)).all()


def published_main(hotline, lang="en"):
    with hotline.db.read() as conn:
        return conn.execute(select(Announcement.source, Announcement.created_by, Announcement.media_sha256,
                                   Announcement.duration_ms).where(
            Announcement.language == lang, Announcement.topic == "main",
            Announcement.status == "published")).one()


def test_an_admin_records_hears_and_publishes_an_announcement_by_phone(admin_app, twilio_host):
    hotline = admin_app.extensions["ivr"]
    url = twilio_host.origin + REC_PATH
    result = admin_call(admin_app, ["482916", "1", "1", "1"], recording_url=url)
    assert [h.kind for h in result.heard if h.kind in ("record", "play")] == ["record", "play"]
    assert next(h.url for h in result.heard if h.kind == "play") == url  # the admin hears it back
    # Two-person publishing: the admin is told it awaits a second person's approval.
    assert result.said()[-1].startswith("Thank you. Your recording will be saved within a minute. It awaits "
                                        "approval by a second person: callers do not hear it until then.")
    assert twilio_host.requests == []  # nothing fetched inside the webhooks
    before = published_main(hotline)
    assert hotline.jobs.run_one()
    assert twilio_host.requests == [("GET", REC_PATH, basic_auth(ACCOUNT, AUTH_TOKEN))]
    assert published_main(hotline) == before  # a draft: callers do not hear it yet
    (draft,) = approvals.awaiting(hotline.db)
    assert (draft["source"], draft["created_by"], draft["requested_by"]) == ("phone", "dana", "dana")
    # The recording is ours now: Twilio's copy is deleted, with the account's credentials, by a job of its own.
    assert hotline.jobs.run_one()
    assert twilio_host.requests[1:] == [("DELETE", DELETE_PATH, basic_auth(ACCOUNT, AUTH_TOKEN))]
    assert audits(hotline, "recording.")[0][:2] == ("dana", "recording.deleted")
    assert not hotline.jobs.run_one()
    approved(hotline.db, draft)
    source, by, sha, duration = published_main(hotline)
    assert (source, by, sha) == ("phone", "dana", draft["media_sha256"]) and 2_000 < duration < 10_000
    # Callers now hear it.
    call = SimulatedCall(FlaskTransport(admin_app), AUTH_TOKEN).run()
    assert any(sha in h.url for h in call.heard if h.kind == "play")
    actions = [a.action for a in audits(hotline, "")]
    assert "admin_line.login" in actions and "announcement.phone_recorded" in actions
    assert actions[-3:] == ["announcement.publish_requested", "recording.deleted", "announcement.approve"]


def test_a_recording_from_a_host_outside_the_allow_list_is_refused(admin_app, twilio_host):
    hotline = admin_app.extensions["ivr"]
    before = published_main(hotline)
    evil = StubHost({REC_PATH: (200, {}, b"RIFF....")})
    try:
        admin_call(admin_app, ["482916", "1", "1", "1"], recording_url=evil.origin + REC_PATH)
        assert hotline.jobs.run_one()
        assert evil.requests == []  # not even one request to a host that is not allowed
    finally:
        evil.close()
    with hotline.db.read() as conn:
        status, error = conn.execute(select(Job.status, Job.last_error).where(Job.kind == "phone_recording")).one()
    assert status == "failed" and "not on the allow-list" in error
    assert published_main(hotline) == before
    assert audits(hotline, "announcement.phone_failed")[0].actor == "dana"
    assert not hotline.jobs.run_one()  # a job that failed leaves the recording there (planned: a week), to be retried


def deletion_due_now(hotline) -> None:
    """A week passes, as far as the planned deletion of a recording is concerned."""
    with hotline.db.write() as conn:
        conn.execute(update(Job).where(Job.kind == "recording_delete").values(run_after=utcnow()))


def test_a_recording_that_could_not_be_published_stays_for_a_retry_then_goes_when_planned(admin_app, twilio_host):
    hotline = admin_app.extensions["ivr"]
    twilio_host.routes[REC_PATH] = (200, {"Content-Type": "audio/x-wav"}, b"RIFF but not audio")
    admin_call(admin_app, ["482916", "1", "1", "1"], recording_url=twilio_host.origin + REC_PATH)
    assert hotline.jobs.run_one()
    with hotline.db.read() as conn:
        assert conn.execute(select(Job.status).where(Job.kind == "phone_recording")).scalar() == "failed"
    assert not hotline.jobs.run_one()  # kept for IVR_CALLBACK_RETENTION_DAYS, to be retried from the Jobs page
    assert [r[0] for r in twilio_host.requests] == ["GET"]
    deletion_due_now(hotline)
    assert hotline.jobs.run_one()
    assert twilio_host.requests[-1] == ("DELETE", DELETE_PATH, basic_auth(ACCOUNT, AUTH_TOKEN))
    (line,) = audits(hotline, "recording.deleted")
    assert line.actor == "dana" and line.to_value == "deleted at Twilio"


def test_a_recording_left_when_the_admin_hangs_up_at_the_review_goes_when_planned(admin_app, twilio_host):
    hotline = admin_app.extensions["ivr"]
    call = SimulatedCall(FlaskTransport(admin_app), AUTH_TOKEN, keys=["482916", "1", "1"], max_requests=6,
                         recording_url=twilio_host.origin + REC_PATH, caller="+15555559876").run("/voice/admin")
    assert call.said()[-1].startswith("To publish this recording, press 1.")  # hung up there
    assert not hotline.jobs.run_one() and twilio_host.requests == []
    with hotline.db.read() as conn:
        due = conn.execute(select(Job.run_after).where(Job.kind == "recording_delete")).scalar()
    assert timedelta(days=6, hours=23) < due.replace(tzinfo=utcnow().tzinfo) - utcnow() <= timedelta(days=7)
    deletion_due_now(hotline)
    assert hotline.jobs.run_one()
    assert twilio_host.requests == [("DELETE", DELETE_PATH, basic_auth(ACCOUNT, AUTH_TOKEN))]


def test_a_redirect_to_another_host_is_refused_too(admin_app, twilio_host):
    hotline = admin_app.extensions["ivr"]
    twilio_host.routes["/redirect"] = (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    admin_call(admin_app, ["482916", "1", "1", "1"], recording_url=twilio_host.origin + "/redirect")
    hotline.jobs.run_one()
    with hotline.db.read() as conn:
        error = conn.execute(select(Job.last_error).where(Job.kind == "phone_recording")).scalar()
    assert "169.254.169.254 is not on the allow-list" in error


@pytest.mark.parametrize("trick", ["\\@", "@", "%0d%0a", "\t"])
def test_a_url_two_parsers_read_differently_sends_nothing_anywhere(admin_app, twilio_host, trick):
    """`http://evil\\@allowed/...`: urlsplit sees the allowed host, requests (urllib3) the evil one, and the
    account's credentials would go with it. Backslashes, user info and control characters are refused."""
    hotline = admin_app.extensions["ivr"]
    evil = StubHost({})
    try:
        url = f"{evil.origin}{trick}{twilio_host.origin.removeprefix('http://')}{REC_PATH}"
        admin_call(admin_app, ["482916", "1", "1", "1"], recording_url=url)
        assert hotline.jobs.run_one()
        assert evil.requests == [] and twilio_host.requests == []  # no request, with or without credentials
    finally:
        evil.close()
    with hotline.db.read() as conn:
        status, error = conn.execute(select(Job.status, Job.last_error).where(Job.kind == "phone_recording")).one()
    assert status == "failed" and any(why in error for why in ("backslash", "user info", "not a URL"))


def test_three_wrong_pins_hang_up_and_are_audited(admin_app):
    hotline = admin_app.extensions["ivr"]
    result = admin_call(admin_app, ["0000", "111111", "99999999", "482916"])
    assert result.ended == "hangup"
    assert result.said().count("That PIN is not right.") == 2 and result.said()[-1] == "That PIN is not right. Goodbye."
    rows = audits(hotline, "admin_line")
    assert [r.action for r in rows] == ["admin_line.pin_failed"] * 3 + ["admin_line.locked_out"]
    assert all(r.actor == "phone ***9876" for r in rows)  # the number is masked even in the audit log
    # A viewer's PIN does not open the admin line (the second try above was vic's).


@pytest.mark.parametrize("review", [["3"], ["2", "3"]], ids=["discarded", "recorded again, then discarded"])
def test_discarding_publishes_nothing_and_deletes_the_recording_at_twilio(admin_app, twilio_host, review):
    hotline = admin_app.extensions["ivr"]
    before = published_main(hotline)
    admin_call(admin_app, ["482916", "2", "3", *review], recording_url=twilio_host.origin + REC_PATH)
    assert hotline.jobs.run_one()
    assert twilio_host.requests == [("DELETE", DELETE_PATH, basic_auth(ACCOUNT, AUTH_TOKEN))]  # fetched: never
    assert not hotline.jobs.run_one()  # one deletion per recording (the simulated Twilio reuses its URL)
    assert published_main(hotline) == before
    assert audits(hotline, "announcement.phone_discarded")[0].actor == "dana"
    assert audits(hotline, "recording.deleted")[0][0] == "dana"


def test_the_session_key_is_bound_to_the_call(admin_app):
    import hashlib
    import hmac

    from helpers import parse_twiml, signed_post, twilio_params

    secret = admin_app.extensions["ivr"].config.secret_key.encode()
    sid_a, sid_b = "CA" + "a" * 32, "CA" + "b" * 32
    key_a = hmac.new(secret, f"admin-line:{sid_a}:dana".encode(), hashlib.sha256).hexdigest()[:24]
    url = f"/voice/admin/lang?u=dana&k={key_a}"

    def step(sid):
        return parse_twiml(signed_post(admin_app.test_client(), url, twilio_params(sid, Digits="1"),
                                       sign_url="http://localhost" + url))

    assert "To record the main announcement" in step(sid_a).find("Gather/Say").text
    other = step(sid_b)  # the same URL, replayed in another call
    assert other.find("Say").text == "This session has expired. Goodbye." and other.find("Hangup") is not None


@pytest.mark.parametrize("keys, where", [(["482916"], "language"), (["482916", "1"], "topic")])
def test_a_silent_admin_is_let_go_from_the_language_and_topic_menus(admin_app, keys, where):
    result = admin_call(admin_app, keys)  # then silence
    assert result.ended == "hangup", result.transcript()
    assert result.said()[-1].endswith("Nothing was recorded. Goodbye.")
    menu = "To record in" if where == "language" else "To record the main"
    asked = [s for s in result.said() if s.startswith(menu)]
    assert len(asked) == 3  # the menu and two tries more, as the caller menus allow
