"""What a frightened caller meets: facts that match, promises that are kept, a hold without dead air, menus
that are short on repeat and always lead to a person (issue 14)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import yaml
from click.testing import CliRunner

from helpers import approved, parse_twiml, signed_post, twilio_params
from ivr.core import flow
from ivr.core.rules import parse
from ivr.core.verbs import Context, Position, Say
from ivr.media import audio
from ivr.ops.cli import main
from ivr.store import announcements, incidents, queues
from ivr.store.state import set_mode
from ivr.store.users import add_user, create_token

NEW_MAIN = "Update: the breach involved names and email addresses only. No payment data was taken."
MENU_EN = "To hear what happened"
SHORT_EN = "For the full menu, press 9. To speak with a member of our team, press 0."


@pytest.fixture
def new_incident(hotline):
    """A new incident, activated, with only its main announcement published (in English)."""
    inc = incidents.create(hotline.db, title="Second breach", severity="high", exposed="emails",
                           severities=hotline.rules.rules.severities, actor="test", activate=True)
    row = announcements.create_version(hotline.db, lang="en", topic="main", text=NEW_MAIN, source="text",
                                       audio_=None, actor="test", publish=True, reason="new incident")
    return inc, approved(hotline.db, row)


def test_a_missing_topic_falls_back_to_the_announcement_never_to_no_details(new_incident, place_call):
    said = place_call(keys=["1", "2"]).said()
    assert said.count(NEW_MAIN) == 3  # the announcement, then again for key 1 and for key 2
    assert not any("We do not have more details yet" in s for s in said)
    assert not any("change your password" in s for s in said)  # no generic advice the facts contradict


def test_publishing_main_without_details_and_advice_warns_everywhere(hotline, app, new_incident, config):
    _, row = new_incident
    assert len(row["warnings"]) == 2 and "no details announcement is published in en" in row["warnings"][0]
    # /healthz names what is missing but keeps its status code: callers are served.
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert {"en/details", "en/advice", "es/main"} <= set(health.get_json()["missing_topics"])
    # The API says so in its answer.
    add_user(hotline.db, "ada", "admin", actor="test")
    auth = {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}
    resp = app.test_client().post("/api/announcements/tts", headers=auth, json={
        "lang": "es", "topic": "main", "text": "Actualización del incidente.", "publish": True, "reason": "r"})
    assert resp.status_code == 201 and len(resp.get_json()["warnings"]) == 2
    # So does the CLI (on stderr), and publishing the details leaves only the advice to warn about.
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TTS_ENGINES": "espeak"}
    runner = CliRunner(mix_stderr=False) if "mix_stderr" in CliRunner.__init__.__code__.co_varnames else CliRunner()
    details = runner.invoke(main, ["announce", "tts", "--lang", "en", "--topic", "details", "--text",
                                   "Names and emails.", "--publish", "--by", "dana"], env=env, catch_exceptions=False)
    add_user(hotline.db, "lee", "ops", actor="test")  # the second person
    runner.invoke(main, ["announce", "approve", details.stdout.split()[0].lstrip("#"), "--by", "lee"], env=env,
                  catch_exceptions=False)
    draft = announcements.create_version(hotline.db, lang="en", topic="main", text=NEW_MAIN + " More.",
                                         source="text", audio_=None, actor="test")
    out = runner.invoke(main, ["announce", "publish", str(draft["id"]), "--by", "dana"], env=env,
                        catch_exceptions=False)
    assert out.exit_code == 0
    assert "warning: no advice announcement is published in en" in out.stderr
    assert "no details" not in out.stderr


def test_the_console_warns_after_publishing_a_main_announcement_alone(hotline, app, new_incident):
    from test_console import Console, PASSWORD  # the console's own sign-in helper
    from ivr.store.models import User
    from werkzeug.security import generate_password_hash

    with hotline.db.write() as conn:
        conn.execute(User.__table__.insert().values(name="ada", role="admin", active=True,
                                                     password_hash=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")))
    console = Console(app)
    assert console.login("ada").status_code == 303
    draft = announcements.create_version(hotline.db, lang="en", topic="main", text=NEW_MAIN + " Again.",
                                         source="text", audio_=None, actor="test")
    resp = console.post(f"/console/announcements/{draft['id']}/publish", {"reason": "update"})
    page = console.get(resp.headers["Location"]).get_data(as_text=True)
    assert "flash-warning" in page and "no details announcement is published in en" in page


def test_message_mode_promises_no_place_in_line(place_call, hotline):
    result = place_call(keys=["0"])
    said = " ".join(result.said())
    assert "To have a member of our team call you back, press 1." in said
    assert "place in line" not in said and "number 1 in line" not in said


def test_a_withheld_caller_in_message_mode_can_leave_a_voicemail(place_call):
    result = place_call(keys=["0"], caller="anonymous")
    said = result.said()
    assert "We cannot call you back: your number is withheld or cannot be called." in said
    assert any(s.startswith("Please leave your name, a phone number") for s in said)
    assert any(d.find("Record") is not None for d in result.documents)


def test_a_fraud_callback_sorts_before_callbacks_asked_for_from_hold(app, hotline):
    client = app.test_client()
    # First, in live mode, a caller on hold in the general queue asks for a callback.
    url = "/voice/hold-choice?l=en&q=general&p=10"
    parse_twiml(signed_post(client, url, twilio_params("CA" + "a" * 32, Digits="1"), sign_url="http://localhost" + url))
    # Later, in message mode, a caller reports fraud (7) and accepts the callback offered.
    other = "+12025550188"  # another caller: one number has one callback owed
    doc = parse_twiml(signed_post(client, "/voice/menu?l=en&a=0&s=1",
                                  twilio_params("CA" + "b" * 32, Digits="7", From=other),
                                  sign_url="http://localhost/voice/menu?l=en&a=0&s=1"))
    action = doc.find("Gather").get("action")
    assert "q=fraud" in action
    parse_twiml(signed_post(client, action, twilio_params("CA" + "b" * 32, Digits="1", From=other),
                            sign_url="http://localhost" + action))
    hotline.recorder.flush()  # callbacks are spooled like the call's events
    worklist = queues.callbacks(hotline.db)
    assert [(c["call_sid"][2:3], c["priority"]) for c in worklist] == [("b", 30), ("a", 10)]


@pytest.mark.parametrize("lang, one, many", [
    ("en", "Recently, callers have waited about one minute.", "Recently, callers have waited about 4 minutes."),
    ("es", "Recientemente, las personas han esperado alrededor de un minuto.",
     "Recientemente, las personas han esperado unos 4 minutos.")])
def test_wait_estimates_use_the_right_plural(hotline, lang, one, many):
    rules, snap = hotline.rules.rules, hotline.state.current()
    for minutes, expected in ((1, one), (4, many)):
        ctx = Context(datetime.now(timezone.utc), recent_wait_minutes=lambda q, m=minutes: m)
        said = [v.text for v in flow.hold(rules, snap, Position(lang), ctx, "general", 10, 2).verbs[0].prompts
                if isinstance(v, Say)]
        assert expected in said


def test_the_hold_loop_has_music_between_messages_not_dead_air(app, hotline):
    set_mode(hotline.db, "live", reason="test", actor="test")
    client = app.test_client()
    url = "/voice/hold?l=en&q=general&p=10"
    doc = parse_twiml(signed_post(client, url, twilio_params(QueuePosition="2"), sign_url="http://localhost" + url))
    assert doc.find("Pause") is None and doc.find(".//Pause") is None
    play = doc.find("Gather/Play")
    assert play is not None and int(play.get("loop", "1")) * hotline.hold_tone[0] >= 20
    resp = client.get(play.text)
    tone = audio.load_phone_wav(resp.get_data())
    resp.close()
    assert len(tone) >= 9_000 and tone.dBFS > -35  # phone-ready, and audible all the way through
    quietest = min(tone[i:i + 500].dBFS for i in range(0, len(tone) - 500, 500))
    assert quietest > -45, "no silent stretch inside the tone"


def test_key_9_after_the_sms_repeats_the_reference(place_call):
    result = place_call(keys=["4", "9"])
    said = result.said()
    ref = flow.reference(result.call_sid)
    assert said.count(f"Your reference is {ref}.") == 1  # said again on request, on its own
    assert sum(ref in s for s in said) == 2
    assert said[-1].endswith("Goodbye.")


def test_after_an_action_or_a_wrong_key_the_short_menu_not_the_full_one(place_call):
    result = place_call(keys=["1", "5", "2"])
    gathers = [d.find("Gather") for d in result.documents]
    last_prompts = [[el.text for el in g.findall("Say")][-1] for g in gathers[1:4]]
    assert last_prompts == [SHORT_EN] * 3
    assert gathers[0].findall("Say")[-2].text.startswith(MENU_EN)  # the first time, all of it
    assert result.said().count(SHORT_EN) == 3


def test_zero_reaches_a_person_from_the_language_menu(config, rules_file, tmp_path):
    data = yaml.safe_load(rules_file.read_text())
    data["languages"]["fr"] = {"name": "Français", "key": "4", "say_language": "fr-FR"}
    data["prompts"]["fr"] = dict(data["prompts"]["en"], language_offer="Pour le français, appuyez sur {key}.")
    rules = parse(yaml.safe_dump(data, allow_unicode=True))
    from ivr.core.snapshot import Content, Snapshot

    snap = Snapshot("message", Content())
    offer = flow.menu_choice(rules, snap, Position("en", 0, 1), "3")
    prompts = offer.verbs[0].prompts
    assert [(p.text, p.lang) for p in prompts] == [("For English, press 1.", "en"), ("Para español, oprima 2.", "es"),
                                                   ("Pour le français, appuyez sur 4.", "fr")]
    person = flow.language_choice(rules, snap, Position("en", 0, 2), "0", Context(datetime.now(timezone.utc)))
    assert person.events[0].kind == "menu_choice" and person.events[1].kind == "route"
