"""The two staff lines' steps word for word: the PIN, the admin line's menus and the review of a recording,
the agent line's sign-in. Pure: what staff hear, the links Twilio is handed, what the call log and the audit
log get. (The served lines: tests/test_admin_line.py, tests/test_live_agents.py, tests/test_pin_guard.py.)"""
from __future__ import annotations

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core import admin_line, agent_line
from ivr.core.effects import PHONE_RECORDING_JOB, RECORDING_DELETE_JOB, Audit, EnqueueJob
from ivr.core.rules import load
from ivr.core.staff_call import PIN_LOCKED, StaffCall
from ivr.core.verbs import Gather, Hangup, Link, Redirect, Say

RULES = load(PROJECT_ROOT / "routing_rules.yaml")
ADMIN = StaffCall("admin-line", "CA" + "2" * 32, "s" * 32, "phone ***0123")
AGENT = StaffCall("agent-line", "CA" + "4" * 32, "s" * 32, "phone ***0500")
URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
RE = "RE" + "b" * 32
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/AC{'a' * 32}/Recordings/{RE}"  # SIDs as Twilio's are
LANGUAGES = "To record in English, press 1. To record in Español, press 2."
TOPICS = ("To record the main announcement, press 1. To record the details, press 2. To record what callers "
          "should do, press 3.")
REVIEW = "To publish this recording, press 1. To record again, press 2. To discard it, press 3."


def en(text: str) -> Say:
    return Say(text, "en")


def logged(reply) -> list[tuple[str, str]]:
    return [(e.kind, e.detail) for e in reply.events]


def menu(link: Link, *said: str, timeout: int = 8) -> list:
    """A staff menu: the keys asked for inside a Gather, and the same step again when no key comes."""
    return [Gather(link, tuple(en(s) for s in said), timeout), Redirect(link)]


# -- the PIN, on both lines --------------------------------------------------------------------------------
def pin_prompt(route: str, tries: int, line: str, *lead: str) -> list:
    return [Gather(Link.to(route, t=tries), tuple(en(s) for s in lead) + (
        en(f"{line}. Enter your PIN, then press the pound key."),), 10, num_digits=None),
            en("We did not get a PIN. Goodbye."), Hangup()]


def test_the_admin_line_asks_for_a_pin_and_a_locked_caller_id_is_told_only_to_try_later():
    reply = admin_line.start()
    assert reply.verbs == pin_prompt("/voice/admin/pin", 0, "Announcement line") and reply.effects == []
    assert logged(reply) == [("admin_line", "pin asked")]
    locked = admin_line.start(locked=True)
    assert locked.verbs == [en(PIN_LOCKED), Hangup()] and logged(locked) == [("admin_line", "pin locked")]


def test_a_wrong_admin_pin_is_asked_again_audited_each_time_and_the_third_ends_the_call():
    first = admin_line.pin_entered(ADMIN, RULES, 0, None)
    assert first.verbs == pin_prompt("/voice/admin/pin", 1, "Announcement line", "That PIN is not right.")
    assert logged(first) == [("admin_line", "wrong pin")]
    assert first.effects == [Audit("phone ***0123", "admin_line.pin_failed", "admin line", "try 1 of 3")]
    last = admin_line.pin_entered(ADMIN, RULES, 2, None)
    assert last.verbs == [en("That PIN is not right. Goodbye."), Hangup()]
    assert logged(last) == [("admin_line", "locked out")]
    assert last.effects == [Audit("phone ***0123", "admin_line.pin_failed", "admin line", "try 3 of 3"),
                            Audit("phone ***0123", "admin_line.locked_out", "admin line",
                                  "too many wrong PINs; call ended")]
    locked = admin_line.pin_entered(ADMIN, RULES, 0, None, locked=True)
    assert locked.verbs == [en(PIN_LOCKED), Hangup()] and logged(locked) == [("admin_line", "pin locked")]
    assert locked.effects == [Audit("phone ***0123", "admin_line.pin_failed", "admin line", "try 1 of 3")]


def test_the_right_admin_pin_signs_in_for_this_call_and_offers_the_languages():
    reply = admin_line.pin_entered(ADMIN, RULES, 1, "dana")
    assert reply.verbs == menu(ADMIN.link("/voice/admin/lang", "dana", a=0), LANGUAGES)
    assert logged(reply) == [("admin_line", "login dana")]
    assert reply.effects == [Audit("dana", "admin_line.login", "admin line", "phone ***0123")]


def test_the_agent_line_asks_only_an_agents_number_for_a_pin():
    stranger = agent_line.start(AGENT, None, "***0999")
    assert stranger.verbs == [en(agent_line.STRANGER), Hangup()] and logged(stranger) == [("agent_line", "unknown")]
    assert stranger.effects == [Audit("phone ***0999", "agent_line.unknown_caller", "agent line",
                                      "not an agent's number; call ended")]
    asked = agent_line.start(AGENT, "alex", "***0500")
    assert asked.verbs == pin_prompt("/voice/agent/pin", 0, "Agent line") and logged(asked) == [
        ("agent_line", "pin asked")] and asked.effects == []
    locked = agent_line.start(AGENT, "alex", "***0500", locked=True)
    assert locked.verbs == [en(PIN_LOCKED), Hangup()] and logged(locked) == [("agent_line", "pin locked")]


def test_an_agent_pin_wrong_three_times_ends_the_call_and_the_right_one_goes_to_the_next_caller():
    first = agent_line.pin_entered(AGENT, "alex", False, 0, "***0500")
    assert first.verbs == pin_prompt("/voice/agent/pin", 1, "Agent line", "That PIN is not right.")
    assert logged(first) == [("agent_line", "wrong pin")]
    assert first.effects == [Audit("alex", "agent_line.pin_failed", "agent line", "try 1 of 3 from ***0500")]
    last = agent_line.pin_entered(AGENT, "alex", False, 2, "***0500")
    assert last.verbs == [en("That PIN is not right. Goodbye."), Hangup()]
    assert logged(last) == [("agent_line", "locked out")]
    assert last.effects == [Audit("alex", "agent_line.pin_failed", "agent line", "try 3 of 3 from ***0500"),
                            Audit("alex", "agent_line.locked_out", "agent line", "too many wrong PINs; call ended")]
    locked = agent_line.pin_entered(AGENT, "alex", False, 0, "***0500", locked=True)
    assert locked.verbs == [en(PIN_LOCKED), Hangup()] and logged(locked) == [("agent_line", "pin locked")]
    assert len(locked.effects) == 1
    right = agent_line.pin_entered(AGENT, "alex", True, 2, "***0500")
    assert right.verbs == [Redirect(AGENT.link("/voice/agent/next", "alex", a=0))]
    assert logged(right) == [("agent_line", "login alex")]
    assert right.effects == [Audit("alex", "agent_line.login", "agent line", "from ***0500")]
    gone = agent_line.pin_entered(AGENT, None, True, 0, "***0500")  # the number is no longer an agent's
    assert gone.verbs == [en(agent_line.STRANGER), Hangup()] and gone.events == [] and gone.effects == []


# -- the admin line's menus --------------------------------------------------------------------------------
@pytest.mark.parametrize("step", [
    lambda: admin_line.language_chosen(ADMIN, RULES, None, "1"),
    lambda: admin_line.topic_chosen(ADMIN, None, "en", "1"),
    lambda: admin_line.reviewed(ADMIN, None, "en", "main", URL, 0, "1"),
    lambda: admin_line.reviewed(ADMIN, "dana", "en", "weather", URL, 0, "1"),
    lambda: admin_line.reviewed(ADMIN, "dana", "en", "main", "", 0, "1"),
])
def test_a_menu_step_the_line_did_not_link_to_says_the_session_expired_and_does_nothing(step):
    reply = step()
    assert reply.verbs == [en(admin_line.EXPIRED), Hangup()] and reply.effects == []
    assert logged(reply) == [("admin_line", "bad session")]


@pytest.mark.parametrize("digits", ["9", "", None])
def test_no_language_chosen_asks_again_then_lets_the_admin_go(digits):
    again = admin_line.language_chosen(ADMIN, RULES, "dana", digits, attempts=0)
    assert again.verbs == menu(ADMIN.link("/voice/admin/lang", "dana", a=1), "Please choose a language.", LANGUAGES)
    assert again.events == [] and again.effects == []
    assert admin_line.language_chosen(ADMIN, RULES, "dana", digits, attempts=1).verbs[0].action.params[-1] == (
        "a", "2")
    last = admin_line.language_chosen(ADMIN, RULES, "dana", digits, attempts=2)
    assert last.verbs == [en("No language was chosen. Nothing was recorded. Goodbye."), Hangup()]
    assert logged(last) == [("admin_line", "no language")]


def test_a_language_key_offers_the_three_topics_in_that_language():
    reply = admin_line.language_chosen(ADMIN, RULES, "dana", "2", attempts=2)
    assert reply.verbs == menu(ADMIN.link("/voice/admin/topic", "dana", l="es", a=0), TOPICS)
    assert reply.events == [] and reply.effects == []


@pytest.mark.parametrize("digits", ["0", "4", "x", "", None])
def test_no_topic_chosen_asks_again_then_lets_the_admin_go(digits):
    again = admin_line.topic_chosen(ADMIN, "dana", "es", digits, attempts=0)
    assert again.verbs == menu(ADMIN.link("/voice/admin/topic", "dana", l="es", a=1), "Please choose what to record.",
                               TOPICS)
    last = admin_line.topic_chosen(ADMIN, "dana", "es", digits, attempts=2)
    assert last.verbs == [en("Nothing was chosen. Nothing was recorded. Goodbye."), Hangup()]
    assert logged(last) == [("admin_line", "no topic")]


@pytest.mark.parametrize("digits, topic", [("1", "main"), ("2", "details"), ("3", "advice")])
def test_a_topic_key_goes_to_the_recording(digits, topic):
    reply = admin_line.topic_chosen(ADMIN, "dana", "es", digits, attempts=2)
    assert reply.verbs == [Redirect(ADMIN.link("/voice/admin/record", "dana", l="es", tp=topic, a=0))]
    assert reply.events == [] and reply.effects == []


# -- the review of a recording -----------------------------------------------------------------------------
def test_publishing_without_two_person_approval_says_so_queues_the_job_and_audits_it():
    reply = admin_line.reviewed(ADMIN, "dana", "es", "advice", URL, 1, "1", two_person=False)
    assert reply.verbs == [en("Thank you. Your recording will be published within a minute. Goodbye."), Hangup()]
    assert logged(reply) == [("admin_line", "publish")]
    assert reply.effects == [
        EnqueueJob(PHONE_RECORDING_JOB, {"recording_url": URL, "lang": "es", "topic": "advice", "actor": "dana",
                                         "call_sid": ADMIN.call_sid}, f"phone_recording:{ADMIN.call_sid}:{URL}"),
        Audit("dana", "announcement.phone_recorded", "es/advice", "queued for publishing",
              "recorded on the admin phone line")]
    awaits = admin_line.reviewed(ADMIN, "dana", "es", "advice", URL, 1, "1")
    assert awaits.verbs[0] == en("Thank you. Your recording will be saved within a minute. It awaits approval by a "
                                 "second person: callers do not hear it until then. Goodbye.")
    assert awaits.effects[1].to_value == "queued; it will await approval"
    long_url = URL + "x" * 200  # the job's key is cut to what the column holds
    assert admin_line.reviewed(ADMIN, "dana", "es", "advice", long_url, 0, "1").effects[0].dedupe_key == (
        f"phone_recording:{ADMIN.call_sid}:{long_url}"[:160])


def test_recording_again_discarding_or_another_key_at_the_review():
    again = admin_line.reviewed(ADMIN, "dana", "es", "main", TWILIO_URL, 1, "2")
    assert again.verbs == [Redirect(ADMIN.link("/voice/admin/record", "dana", l="es", tp="main", a=0))]
    # The recording recorded again is deleted at Twilio (tests/test_recording_delete.py: the job).
    assert again.events == [] and again.effects == [EnqueueJob(RECORDING_DELETE_JOB, {
        "account_sid": "AC" + "a" * 32, "recording_sid": RE, "actor": "dana",
        "why": "es/main: recorded again on the admin line"}, f"recording_delete:{RE}")]
    discarded = admin_line.reviewed(ADMIN, "dana", "es", "main", TWILIO_URL, 0, "3")
    assert discarded.verbs == [en("The recording was discarded. Nothing was published. Goodbye."), Hangup()]
    assert logged(discarded) == [("admin_line", "discard")]
    assert discarded.effects == [Audit("dana", "announcement.phone_discarded", "es/main",
                                       "recording discarded; nothing published"),
                                 EnqueueJob(RECORDING_DELETE_JOB, {
                                     "account_sid": "AC" + "a" * 32, "recording_sid": RE, "actor": "dana",
                                     "why": "es/main: discarded on the admin line"}, f"recording_delete:{RE}")]
    # A URL that is not one of Twilio's recordings: nothing to delete there.
    assert admin_line.reviewed(ADMIN, "dana", "es", "main", URL, 1, "2").effects == []
    assert admin_line.reviewed(ADMIN, "dana", "es", "main", URL, 1, "3").effects == discarded.effects[:1]
    other = admin_line.reviewed(ADMIN, "dana", "es", "main", URL, 0, "7")
    assert other.verbs == menu(ADMIN.link("/voice/admin/review", "dana", l="es", tp="main", r=URL, a=1),
                               "Please choose.", REVIEW)
    assert other.events == [] and other.effects == []
    assert admin_line.reviewed(ADMIN, "dana", "es", "main", URL, 1, None).verbs[0].action.params[-1] == ("a", "2")
    last = admin_line.reviewed(ADMIN, "dana", "es", "main", TWILIO_URL, 2, None)  # the third time without a choice
    assert last.verbs == discarded.verbs and last.effects == discarded.effects
