"""The go-live check (`ivr preflight`) on the README's "On the day" steps, and the switch to live it guards
(CLI, console, API): refused on problems, overridden only with a reason the audit log keeps."""
from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from helpers import approved
from ivr.ops.cli import main
from ivr.store.models import AuditEntry
from ivr.store.state import get_mode
from test_console_pages import _agent_on_line

STAND_INS = ("en/details", "en/advice", "es/main", "es/details", "es/advice")
SMS_ENV = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_SMS_FROM": "+15555550100",
           "IVR_NOTICE_URL": "https://example.com/notice"}


@pytest.fixture
def ivr(config):
    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_RULES": str(config.rules_path),
           "IVR_SECRET_KEY": config.secret_key, "IVR_TTS_ENGINES": "espeak",
           "IVR_MEDIA_CACHE": str(config.media_cache_dir)}

    def run(*args, ok=True, extra=None):
        result = CliRunner().invoke(main, list(args), env={**env, **(extra or {})}, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def on_the_day(ivr, tmp_path):
    """The README's "On the day" steps, literally."""
    statement = tmp_path / "statement.txt"
    statement.write_text("Card numbers and names were stolen. Cancel your card with your bank.")
    created = ivr("incident", "create", "--title", "Card data theft", "--severity", "critical", "--exposed",
                  "names, card numbers", "--activate", "--carry-over", "--reason", "disclosure day")
    asked = ivr("announce", "tts", "--lang", "en", "--text-file", str(statement), "--publish", "--reason",
                "initial disclosure").output
    ivr("users", "add", "lee", "--role", "ops")  # the second person (two-person publishing)
    ivr("announce", "approve", asked.split()[0].lstrip("#"), "--by", "lee", "--reason", "legal signed")
    return created


def audit_rows(hotline, action):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry).where(AuditEntry.action == action)).all()


def test_preflight_names_the_placeholder_topics_after_the_on_the_day_steps(ivr, tmp_path, hotline):
    created = on_the_day(ivr, tmp_path)
    # The activation ran the check too, for the mode the hotline is in.
    assert "go-live check:" in created.output and "en/main: carried over" in created.output
    result = ivr("preflight", ok=False)
    assert result.exit_code == 1
    for topic in STAND_INS:
        assert f"- {topic}: carried over from the incident before" in result.output
    assert "- en/main" not in result.output  # the statement just published is this incident's own
    assert "callers pressing 1 in en hear en/details v1" in result.output
    assert 'fix: ivr announce tts --lang en --topic details --text-file details.txt --publish' in result.output
    assert "languages out of step: en main v2, es main v1 (carried over)" in result.output
    assert "nobody is on the agent line" in result.output
    assert "key 4 promises a text message, but SMS is not configured" in result.output
    status = ivr("status").output
    assert "en key 1 (details): hears en/details v1 (carried over from the incident before)" in status
    assert "go-live check: " in status and "problem(s)" in status


def test_a_switch_to_live_with_problems_needs_an_override_with_a_reason(ivr, tmp_path, hotline):
    on_the_day(ivr, tmp_path)
    refused = ivr("mode", "set", "live", "--reason", "agents on shift", ok=False)
    assert refused.exit_code == 1 and "Nothing changed" in refused.output and "- es/main: carried over" in refused.output
    assert get_mode(hotline.db)[0] == "message" and not audit_rows(hotline, "mode.set")
    done = ivr("mode", "set", "live", "--reason", "agents on shift", "--override", "details follow at noon")
    assert "mode changed: message -> live" in done.output and "go-live check overridden" in done.output
    (row,) = audit_rows(hotline, "preflight.override")
    assert row.reason == "details follow at noon" and "es/main: carried over" in row.to_value
    assert row.actor == audit_rows(hotline, "mode.set")[0].actor


def test_preflight_is_clean_once_every_problem_is_fixed(ivr, tmp_path, hotline, config):
    on_the_day(ivr, tmp_path)
    for lang, topic in [(t.split("/")[0], t.split("/")[1]) for t in STAND_INS]:
        text = f"Our own {topic} for this incident, in {lang}."
        asked = ivr("announce", "tts", "--lang", lang, "--topic", topic, "--text", text, "--publish", "--reason",
                    "day").output
        ivr("announce", "approve", asked.split()[0].lstrip("#"), "--by", "lee")
    _agent_on_line(hotline, "ada", "+15555550142")  # tests/test_console_pages.py: signed in on the agent line
    result = ivr("preflight", extra=SMS_ENV)
    assert result.output.strip() == "preflight: OK, nothing stands in the way of live mode"
    done = ivr("mode", "set", "live", "--reason", "agents on shift", extra=SMS_ENV)
    assert "mode changed: message -> live" in done.output and not audit_rows(hotline, "preflight.override")


def test_the_check_measures_the_published_statement_as_a_caller_hears_it(app, hotline, ivr):
    """The go-live check's time to facts follows the flow with the published audio: it agrees with the
    simulated caller's measure, and names a statement too long to hear in time."""
    from conftest import AUTH_TOKEN
    from ivr.ops import caller_view
    from ivr.store import announcements
    from ivr.tools.simulate import FlaskTransport
    from ivr.tools.time_to_facts import Durations, announcement_matcher, measure
    from test_time_to_facts import MAIN

    rules = hotline.rules.rules
    for lang, text in MAIN.items():
        approved(hotline.db, announcements.create_from_text(hotline.db, hotline.config, rules.languages, lang=lang,
                                                            topic="main", text=text, actor="test", publish=True,
                                                            reason="the day"))
    snap = hotline.state.current()
    transport = FlaskTransport(app)
    durations = Durations(transport, "http://localhost")
    checked = caller_view.seconds_to_facts(rules, snap)
    for lang in rules.languages:
        simulated = measure(transport, AUTH_TOKEN, rules, lang, announcement_matcher(snap, lang), durations)
        assert abs(checked[lang] - simulated.seconds) < 0.5, (lang, checked, simulated)
    assert "until a new caller has heard the main statement" not in ivr("preflight", ok=False).output
    approved(hotline.db, announcements.create_from_text(hotline.db, hotline.config, rules.languages, lang="en",
                                                        topic="main", text=MAIN["en"] + " " + MAIN["en"],
                                                        actor="test", publish=True, reason="more"))
    slow = ivr("preflight", ok=False).output
    assert "- en: " in slow and "s until a new caller has heard the main statement (target 45 s)" in slow
    assert "- es: " not in slow


def test_a_rules_file_that_is_not_the_rules_in_force_is_named(app, hotline, ivr, rules_file):
    from ivr.ops import caller_view

    rules_file.write_text(rules_file.read_text().replace("max_attempts: 3", "max_attempts: 0"))
    hotline.rules.rules  # the running hotline notices, and keeps its last good rules
    problems = caller_view.of_hotline(hotline).problems
    assert problems[0].kind == "rules-file" and "menu.max_attempts" in problems[0].what
    assert "`ivr rules check` names each error; fix the file, then `ivr rules reload`" == problems[0].fix
    out = ivr("preflight", ok=False).output
    assert out.startswith("preflight: 1 problem(s)\n- the rules file on disk is not the rules in force:")
    assert "a running server keeps its last good rules" in out


# -- the check itself, pure: every problem's words and the command that fixes it ---------------------------
PUBLISH = 'ivr announce tts --lang {} --topic {} --text-file {}.txt --publish --reason "..."'


def test_every_problem_the_check_can_find_is_named_with_its_fix_most_urgent_first():
    """A broken rules file, stand-ins, languages out of step, a slow and a missing statement, a closed queue,
    nobody on the agent line, key 4 with no SMS: what an operator reads before switching to live."""
    from test_caller_now import SHIPPED, SUNDAY, snapshot

    from ivr.core import go_live
    from ivr.core.caller_now import caller_now

    snap = snapshot(en_main=("Cards were taken.", None, 3, "tts", 300.0),
                    en_details=("We know little.", None, 1, "tts", 100.0),
                    es_main=("Se robaron tarjetas.", None, 2, "carry-over", 200.0))
    facts = go_live.Facts("live", 0, False, "line 3: menu.options: bad", {"en": 60.4, "es": None}, 45.0)
    found = go_live.problems(caller_now(SHIPPED, snap, SUNDAY), SHIPPED, facts)
    assert [(p.kind, p.what, p.fix) for p in found] == [
        ("rules-file", "the rules file on disk is not the rules in force: line 3: menu.options: bad",
         "`ivr rules check` names each error; fix the file, then `ivr rules reload`"),
        ("stand-in", "en/details: published before the main statement (v3): it may no longer agree with it "
                     "(callers pressing 1 in en hear en/details v1)", PUBLISH.format("en", "details", "details")),
        ("stand-in", "en/advice: nothing published: callers hear en/main v3 instead (callers pressing 2 in en hear "
                     "en/main v3)", PUBLISH.format("en", "advice", "advice")),
        ("stand-in", "es/main: carried over from the incident before (every es caller hears es/main v2)",
         PUBLISH.format("es", "main", "main")),
        ("stand-in", "es/details: nothing published: callers hear en/details v1 instead (callers pressing 1 in es "
                     "hear en/details v1)", PUBLISH.format("es", "details", "details")),
        ("stand-in", "es/advice: nothing published: callers hear es/main v2 instead (callers pressing 2 in es hear "
                     "es/main v2)", PUBLISH.format("es", "advice", "advice")),
        ("out-of-step", "languages out of step: en main v3, es main v2 (carried over); callers in each hear a "
                        "different story",
         f"publish the same statement in every language ({PUBLISH.format('LANG', 'main', 'main')}), or `ivr "
         "announce rollback --lang LANG --to VERSION` to match"),
        ("time-to-facts", "en: 60 s until a new caller has heard the main statement (target 45 s)",
         "publish a shorter statement: " + PUBLISH.format("en", "main", "main")),
        ("time-to-facts", "es: a new caller never hears the main statement", PUBLISH.format("es", "main", "main")),
        ("queue-closed", "queue general is closed; opens Mon 2026-12-07 08:00 America/New_York",
         "wait until it opens, or change its hours in routing_rules.yaml and run `ivr rules reload`"),
        ("no-agents", "live mode: nobody is on the agent line, so callers who press 0 wait with nobody to answer",
         "agents call the agent line (the number pointed at /voice/agent) or sign in on the console's desk page; "
         "`ivr agents list` shows who can"),
        ("sms", "key 4 promises a text message, but SMS is not configured: no text is sent",
         "set TWILIO_ACCOUNT_SID, TWILIO_SMS_FROM and IVR_NOTICE_URL (docs/configuration.md), or take key 4 out "
         "of routing_rules.yaml and run `ivr rules reload`")]
    assert str(found[0]) == f"{found[0].what}\n    fix: {found[0].fix}"


def test_in_live_mode_a_closed_queue_says_what_key_0_gets_and_the_target_itself_is_not_too_slow():
    import dataclasses

    from test_caller_now import SHIPPED, SUNDAY, snapshot

    from ivr.core import go_live
    from ivr.core.caller_now import caller_now, in_mode

    snap = snapshot(en_main=("Cards were taken.", None, 3, "tts", 300.0), en_details=("Names.", None, 4, "tts", 400.0),
                    en_advice=("Cancel.", None, 4, "tts", 400.0), es_main=("Tarjetas.", None, 3, "tts", 300.0),
                    es_details=("Nombres.", None, 4, "tts", 400.0), es_advice=("Cancele.", None, 4, "tts", 400.0))
    assert snap.mode == "message"
    now = caller_now(SHIPPED, in_mode(snap, "live"), SUNDAY)  # what callers would get after the switch
    facts = go_live.Facts("live", 1, True, None, {"en": 45.0, "es": 44.9}, 45.0)
    assert [(p.kind, p.what) for p in go_live.problems(now, SHIPPED, facts)] == [
        ("queue-closed", "queue general is closed; opens Mon 2026-12-07 08:00 America/New_York; callers pressing 0 "
                         "get voicemail instead")]
    assert go_live.problems(now, SHIPPED, dataclasses.replace(facts, mode="message")) == []  # nobody queues


def test_a_closed_queue_names_every_key_that_sends_callers_to_it():
    """Keys 0 and 7 both sent to the general queue: the operator reads both, once each (not once per language)."""
    from callers import everyone, with_routing
    from test_caller_now import SHIPPED, SUNDAY, snapshot

    from ivr.core import go_live
    from ivr.core.caller_now import caller_now, in_mode

    rules = with_routing(everyone("enqueue", queue="general"), rules=SHIPPED)
    now = caller_now(rules, in_mode(snapshot(en_main=("Cards were taken.", None, 1, "tts", 1.0)), "live"), SUNDAY)
    facts = go_live.Facts("live", 1, True, None, {"en": 10.0, "es": 10.0}, 45.0)
    assert [p.what for p in go_live.problems(now, rules, facts) if p.kind == "queue-closed"] == [
        "queue general is closed; opens Mon 2026-12-07 08:00 America/New_York; callers pressing 7 or 0 get "
        "voicemail instead"]


def test_the_same_version_number_carried_over_in_one_language_is_out_of_step_and_each_key_to_a_topic_is_named():
    """en main v2 is this incident's, es main v2 the last incident's: the same number, a different story. With a
    second key for details, a topic's stand-in names both keys."""
    from test_caller_now import SHIPPED, SUNDAY, snapshot

    from ivr.core import go_live
    from ivr.core.caller_now import caller_now

    snap = snapshot(en_main=("Cards were taken.", None, 2, "tts", 300.0),
                    es_main=("Se robaron tarjetas.", None, 2, "carry-over", 200.0))
    options = {**SHIPPED.menu.options, "5": "details"}
    rules = SHIPPED.model_copy(update={"menu": SHIPPED.menu.model_copy(update={"options": options})})
    facts = go_live.Facts("message", 0, True, None, {"en": 10.0, "es": 10.0}, 45.0)
    said = {p.what.split(":")[0]: p.what for p in go_live.problems(caller_now(rules, snap, SUNDAY), rules, facts)}
    assert said["languages out of step"] == ("languages out of step: en main v2, es main v2 (carried over); callers "
                                             "in each hear a different story")
    assert said["en/details"] == ("en/details: nothing published: callers hear en/main v2 instead (callers pressing "
                                  "1 or 5 in en hear en/main v2)")
