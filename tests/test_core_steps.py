"""The call flow and both staff lines as pure steps: no app, no database, no Twilio; values in, values out."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core import admin_line, agent_line, flow
from ivr.core.effects import (PHONE_RECORDING_JOB, RECORDING_DELETE_JOB, Audit, EnqueueJob, EnterQueue, LeaveQueue,
                              SendSms)
from ivr.core.rules import load
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.core.staff_call import PIN_LOCKED, StaffCall
from ivr.core.verbs import (Context, DialQueue, Enqueue, Gather, Hangup, Pause, Play, PlayUrl, Position, Record,
                             Redirect, Say)

RULES = load(PROJECT_ROOT / "routing_rules.yaml")
CONTENT = Content(version=3, incident_id=7, incident_title="Card data theft", severity="critical",
                  spoken={"en/main": Spoken("We were breached.", "a" * 64, 2),
                          "en/details": Spoken("Names and card numbers.", None, 1)})
LIVE, MESSAGE = Snapshot("live", CONTENT), Snapshot("message", CONTENT)
WEDNESDAY_NOON_NEW_YORK = datetime(2026, 12, 2, 17, 0, tzinfo=timezone.utc)  # every queue is open
SECRET = "s" * 32


def ctx(**kw) -> Context:
    return Context(now=WEDNESDAY_NOON_NEW_YORK, call_sid="CA" + "1" * 32, **kw)


def said(verbs) -> list[str]:
    out = []
    for verb in verbs:
        out += said(verb.prompts) if isinstance(verb, Gather) else [getattr(verb, "text", None)]
    return [s for s in out if s]


def test_a_new_call_hears_the_greeting_and_the_announcement_inside_the_menu():
    reply = flow.incoming(RULES, LIVE, Position("en"))
    gather, redirect = reply.verbs
    assert isinstance(gather, Gather) and isinstance(redirect, Redirect)
    # The greeting, Spanish offering itself in its own voice, then the published audio, all interruptible.
    assert gather.prompts[1].lang == "es" and gather.prompts[2] == Play("a" * 64)
    assert gather.action.route == "/voice/menu" and dict(gather.action.params)["s"] == "1"
    assert [e.kind for e in reply.events] == ["call_started"] and reply.outcome == "listening"


def test_key_1_speaks_the_details_and_key_4_asks_the_shell_for_a_text():
    details = flow.menu_choice(RULES, LIVE, Position("en", 0, 1), "1", ctx())
    assert "Names and card numbers." in said(details.verbs)
    sms = flow.menu_choice(RULES, LIVE, Position("en", 0, 1), "4", ctx())
    reference = flow.reference("CA" + "1" * 32)
    assert sms.effects == [SendSms("en", reference)] and any(reference in s for s in said(sms.verbs))


def test_a_withheld_caller_is_offered_no_text_and_nothing_is_queued():
    reply = flow.menu_choice(RULES, LIVE, Position("en", 0, 1), "4", ctx(caller_known=False))
    assert reply.effects == []


def test_a_fraud_report_in_live_mode_is_queued_first_with_its_context():
    reply = flow.menu_choice(RULES, LIVE, Position("en", 0, 1), "7", ctx(affected=lambda: True))
    enqueue = next(v for v in reply.verbs if isinstance(v, Enqueue))
    assert enqueue.queue == RULES.twilio_queue("fraud", RULES.queues["fraud"].priority)
    (enter,) = reply.effects
    assert isinstance(enter, EnterQueue) and (enter.queue, enter.affected, enter.severity) == ("fraud", True,
                                                                                               "critical")


def test_leaving_the_queue_carries_the_wait_the_shell_read():
    reply = flow.queue_result(RULES, LIVE, Position("en"), "bridged", 95)
    assert reply.effects == [LeaveQueue("bridged", 95)] and reply.outcome == "agent"


def test_three_silences_end_the_call_politely():
    for attempt in range(RULES.menu.max_attempts - 1):
        reply = flow.menu_choice(RULES, MESSAGE, Position("en", attempt, attempt + 1), None, ctx())
        assert not any(isinstance(v, Hangup) for v in reply.verbs)
    last = flow.menu_choice(RULES, MESSAGE, Position("en", RULES.menu.max_attempts - 1, 5), None, ctx())
    assert isinstance(last.verbs[-1], Hangup) and last.outcome == "ended-no-choice"


# -- the admin line ----------------------------------------------------------------------------------------
ADMIN_CALL = StaffCall("admin-line", "CA" + "2" * 32, SECRET, "phone ***0123")
RE = "RE" + "9" * 32  # a recording SID, as Twilio's are


def test_three_wrong_admin_pins_end_the_call_and_each_is_audited():
    first = admin_line.pin_entered(ADMIN_CALL, RULES, 0, None)
    assert [a.action for a in first.effects] == ["admin_line.pin_failed"] and not isinstance(first.verbs[-1], Record)
    last = admin_line.pin_entered(ADMIN_CALL, RULES, admin_line.MAX_PIN_TRIES - 1, None)
    assert isinstance(last.verbs[-1], Hangup)
    assert [a.action for a in last.effects] == ["admin_line.pin_failed", "admin_line.locked_out"]
    assert all(a.actor == "phone ***0123" for a in last.effects)


def test_a_pin_that_locks_the_line_is_audited_and_hung_up_in_the_same_words_on_both_lines():
    admin = admin_line.pin_entered(ADMIN_CALL, RULES, 0, None, locked=True)
    assert said(admin.verbs) == [PIN_LOCKED] and isinstance(admin.verbs[-1], Hangup)
    assert [a.action for a in admin.effects] == ["admin_line.pin_failed"]
    assert said(admin_line.start(locked=True).verbs) == [PIN_LOCKED]
    agent = agent_line.pin_entered(AGENT_CALL, "alex", False, 0, "***0500", locked=True)
    assert said(agent.verbs) == [PIN_LOCKED] and [a.action for a in agent.effects] == ["agent_line.pin_failed"]
    assert said(agent_line.start(AGENT_CALL, "alex", "***0500", locked=True).verbs) == [PIN_LOCKED]


def test_a_signed_in_admin_is_bound_to_this_call_only():
    reply = admin_line.pin_entered(ADMIN_CALL, RULES, 0, "dana")
    params = dict(reply.verbs[0].action.params)
    assert ADMIN_CALL.signed_in(params["u"], params["k"]) == "dana"
    other_call = StaffCall("admin-line", "CA" + "3" * 32, SECRET)
    assert other_call.signed_in(params["u"], params["k"]) is None
    assert StaffCall("agent-line", ADMIN_CALL.call_sid, SECRET).signed_in(params["u"], params["k"]) is None
    assert reply.effects == [Audit("dana", "admin_line.login", "admin line", "phone ***0123")]


def test_publishing_a_phone_recording_is_a_job_and_an_audit_line_nothing_else():
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"
    reply = admin_line.reviewed(ADMIN_CALL, "dana", "es", "advice", url, 0, "1")
    job, audit = reply.effects
    assert isinstance(job, EnqueueJob) and job.kind == PHONE_RECORDING_JOB
    assert job.payload == {"recording_url": url, "lang": "es", "topic": "advice", "actor": "dana",
                           "call_sid": ADMIN_CALL.call_sid}
    assert (audit.actor, audit.action, audit.subject) == ("dana", "announcement.phone_recorded", "es/advice")
    assert isinstance(reply.verbs[-1], Hangup)



def test_an_admin_is_told_what_to_record_and_silence_asks_again_until_the_last_try():
    """The admin line's <Record>: what to say and where, the recording sent to /recorded; no recording (Twilio
    skips the action on silence) comes back to the same step with one try more, and the third ends the call."""
    reply = admin_line.record(ADMIN_CALL, RULES, "dana", "es", "advice", 1, 120)
    prompt, record, silence = reply.verbs
    assert prompt.text == ("Record what callers should do in Español after the tone. Press the pound key when "
                           "you are done.")
    assert record == Record(ADMIN_CALL.link("/voice/admin/recorded", "dana", l="es", tp="advice"), 120)
    assert silence == Redirect(ADMIN_CALL.link("/voice/admin/record", "dana", a=2, l="es", tp="advice"))
    assert reply.events == [] and reply.effects == []
    last = admin_line.record(ADMIN_CALL, RULES, "dana", "es", "advice", admin_line.MAX_TRIES, 120)
    assert said(last.verbs) == ["No recording was made. Nothing was published. Goodbye."]
    assert [(e.kind, e.detail) for e in last.events] == [("admin_line", "no recording")]
    for name, topic in (("dana", "weather"), (None, "main")):  # a link not made by the line
        expired = admin_line.record(ADMIN_CALL, RULES, name, "en", topic, 0, 120)
        assert said(expired.verbs) == [admin_line.EXPIRED] and isinstance(expired.verbs[-1], Hangup)
        assert [(e.kind, e.detail) for e in expired.events] == [("admin_line", "bad session")]


def test_an_admin_hears_the_recording_back_and_the_three_choices_and_a_too_short_one_is_made_again():
    url = f"https://api.twilio.com/2010-04-01/Accounts/AC{'1' * 32}/Recordings/{RE}"
    reply = admin_line.recorded(ADMIN_CALL, "dana", "en", "main", 2, url, "1", keep_days=7)  # 1 s is a recording
    gather, again = reply.verbs
    review = ADMIN_CALL.link("/voice/admin/review", "dana", l="en", tp="main", r=url, a=0)
    assert gather.action == review and again == Redirect(review) and gather.timeout == 8
    assert gather.prompts == (Say("Here is your recording.", "en"), PlayUrl(url), Say(
        "To publish this recording, press 1. To record again, press 2. To discard it, press 3.", "en"))
    assert [(e.kind, e.detail) for e in reply.events] == [("admin_line", "recorded 1 s")]
    # Its deletion at Twilio is planned at once, a week ahead, in case the admin hangs up at the review.
    assert reply.effects == [EnqueueJob(RECORDING_DELETE_JOB, {
        "account_sid": "AC" + "1" * 32, "recording_sid": RE, "actor": "dana",
        "why": "en/main: recorded on the admin line, kept 7 days"}, f"recording_delete:{RE}", 7 * 86_400)]
    assert admin_line.recorded(ADMIN_CALL, "dana", "es", "advice", 0, url, "9", keep_days=2).effects[0].after_s == (
        2 * 86_400)
    for bad_url, seconds in ((url, "0"), (url, ""), ("", "5")):
        short = admin_line.recorded(ADMIN_CALL, "dana", "en", "main", 2, bad_url, seconds, keep_days=7)
        assert short.verbs == [Say("That recording was too short.", "en"), Redirect(
            ADMIN_CALL.link("/voice/admin/record", "dana", l="en", tp="main", a=3))] and short.events == []
        # A recording too short to keep goes at once.
        assert short.effects == ([EnqueueJob(RECORDING_DELETE_JOB, {
            "account_sid": "AC" + "1" * 32, "recording_sid": RE, "actor": "dana", "why": "en/main: too short"},
            f"recording_delete:{RE}")] if bad_url else [])
    for name, topic in (("dana", "weather"), (None, "main")):
        expired = admin_line.recorded(ADMIN_CALL, name, "en", topic, 0, url, "5", keep_days=7)
        assert said(expired.verbs) == [admin_line.EXPIRED] and expired.effects == []
        assert [(e.kind, e.detail) for e in expired.events] == [("admin_line", "bad session")]

@pytest.mark.parametrize("step", [
    lambda: admin_line.language_chosen(ADMIN_CALL, RULES, None, "1"),
    lambda: admin_line.record(ADMIN_CALL, RULES, None, "en", "main", 0, 300),
    lambda: admin_line.reviewed(ADMIN_CALL, None, "en", "main", "https://x", 0, "1"),
])
def test_an_admin_step_without_a_valid_session_publishes_nothing(step):
    reply = step()
    assert isinstance(reply.verbs[-1], Hangup) and reply.effects == []


# -- the agent line ----------------------------------------------------------------------------------------
AGENT_CALL = StaffCall("agent-line", "CA" + "4" * 32, SECRET, "phone ***0500")


def test_a_stranger_on_the_agent_line_is_turned_away_and_audited():
    reply = agent_line.start(AGENT_CALL, None, "***0999")
    assert isinstance(reply.verbs[-1], Hangup) and reply.effects[0].action == "agent_line.unknown_caller"


def test_with_nobody_waiting_the_agent_waits_and_the_line_looks_again():
    reply = agent_line.next_caller(AGENT_CALL, RULES, "alex", None, 3)
    assert isinstance(reply.verbs[1], Pause) and dict(reply.verbs[2].to.params)["a"] == "4"
    assert isinstance(agent_line.next_caller(AGENT_CALL, RULES, "alex", None, agent_line.MAX_IDLE_POLLS).verbs[-1],
                      Hangup)


def test_the_agent_hears_the_whisper_then_is_dialled_into_the_queue_of_the_caller_claimed_for_them():
    taken = {"queue": "fraud", "priority": 30, "language": "es", "reason": "fraud first", "severity": "high",
             "affected": True, "wait_s": 95}
    reply = agent_line.next_caller(AGENT_CALL, RULES, "alex", taken, 0)
    whisper, dial = reply.verbs
    assert "on the affected customers list" in whisper.text and "1 minute 35 seconds" in whisper.text
    assert "in Español" in whisper.text  # said on the agent's own call, before the Dial
    assert dial.queue == RULES.twilio_queue("fraud", 30) and dial.action.route == "/voice/agent/next"
    assert (dial.notice.route, dict(dial.notice.params)) == ("/voice/queue-connect", {"l": "es"})



@pytest.mark.parametrize("entry, heard", [
    ({"language": "es", "wait_s": 0, "reason": "", "severity": "", "affected": True, "verified": True},
     "Next caller in Español. on the affected customers list, verified with the reference on their notice. "
     "waited 0 seconds. reason: not known. incident severity unknown. Connecting you now."),
    ({"language": "de", "wait_s": -3, "reason": "fraud first", "severity": "low", "affected": True},
     "Next caller in de. caller ID on the affected customers list, not verified: do not confirm it to them. "
     "waited 0 seconds. reason: fraud first. incident severity low. Connecting you now."),
    ({"language": "", "wait_s": 60, "reason": "everyone else", "severity": "high", "affected": False},
     "Next caller in an unknown language. waited 1 minute. reason: everyone else. incident severity high. "
     "Connecting you now."),
])
def test_the_whisper_says_who_is_next_word_for_word(entry, heard):
    """All an agent knows before the caller is on the line, verified or not (a caller ID on the list must not
    be confirmed to them), with nothing known as such, and a wait read from a clock behind never negative."""
    assert agent_line.whisper(RULES, entry) == heard


def test_the_agent_is_dialled_into_the_queue_and_comes_back_to_a_fresh_wait_and_the_call_log_says_which():
    taken = {"queue": "general", "priority": 10, "language": "en", "reason": "", "severity": "", "affected": False,
             "wait_s": 5}
    reply = agent_line.next_caller(AGENT_CALL, RULES, "alex", taken, 7)
    dial = reply.verbs[-1]
    assert dial.action == AGENT_CALL.link("/voice/agent/next", "alex", a=0)  # after the caller: polls start over
    assert [(e.kind, e.detail) for e in reply.events] == [("agent_line", "dequeue breach-general")]


def test_an_idle_agent_waits_twenty_seconds_at_a_time_and_is_let_go_after_a_long_while():
    waiting = agent_line.idle(AGENT_CALL, "alex", 0)
    assert waiting.verbs == [Say("Nobody is waiting right now.", "en"), Pause(20),
                             Redirect(AGENT_CALL.link("/voice/agent/next", "alex", a=1))]
    gone = agent_line.idle(AGENT_CALL, "alex", agent_line.MAX_IDLE_POLLS)
    assert said(gone.verbs) == ["Nobody has been waiting for a while. Goodbye."]
    assert isinstance(gone.verbs[-1], Hangup)

def test_the_queue_url_document_tells_the_caller_only_that_a_person_is_coming():
    """Twilio runs it on the queued caller's leg (twilio.com/docs/voice/twiml/queue)."""
    reply = agent_line.queue_connect(RULES, "es")
    assert said(reply.verbs) == [RULES.prompt("es", "connecting_agent")] and reply.effects == []


def test_a_callback_offer_says_its_context_and_an_answered_dial_sends_the_agent_to_wrap_up():
    from ivr.core import agent_callbacks

    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    owed = {"id": 7, "language": "en", "queue": "general", "reason": "voicemail", "attempts": 1,
            "requested_at": datetime(2026, 12, 1, 11, 30, tzinfo=timezone.utc), "voicemail_url": "https://x/RE1",
            "number": "+15555550123", "call_sid": "CA" + "5" * 32}
    offer = agent_callbacks.offer(AGENT_CALL, RULES, "alex", owed, now)
    text = " ".join(said(offer.verbs[0].prompts))
    assert "asked 30 minutes ago" in text and "attempt 2 of 3" in text and "voicemail" in text
    dial = agent_callbacks.dialling(AGENT_CALL, "alex", owed, "+15555550100").verbs[-1]
    assert (dial.number, dial.caller_id, dial.action.route) == ("+15555550123", "+15555550100",
                                                               "/voice/agent/callback-result")
    done = agent_callbacks.dial_ended(AGENT_CALL, "alex", 7, "done", "completed", 15)
    assert "record its outcome" in said(done.verbs)[0] and done.verbs[-1].to.route == "/voice/agent/next"




def test_the_agent_hears_a_callbacks_whole_context_then_the_keys_and_then_that_it_is_dialled():
    """Word for word, since it is all an agent knows before pressing 1: a voicemail callback, then one with no
    reason recorded, asked "in the future" by a server whose clock runs ahead (never a negative wait)."""
    from ivr.core import agent_callbacks

    now = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    owed = {"id": 7, "language": "es", "queue": "affected", "reason": "voicemail", "attempts": 2,
            "requested_at": datetime(2026, 12, 1, 11, 58, 55, tzinfo=timezone.utc), "voicemail_url": "https://x/RE1",
            "number": "+15555550123", "call_sid": "CA" + "5" * 32}
    offer = agent_callbacks.offer(AGENT_CALL, RULES, "alex", owed, now)
    gather, again = offer.verbs
    assert said(offer.verbs) == [
        "A callback is owed to a caller in Español. queue affected. reason: voicemail. asked 1 minute 5 seconds "
        "ago. attempt 3 of 3. they left a voicemail, on your desk.",
        "To call them now, press 1. To leave it for later, press 2."]
    assert gather.timeout == 10 and again.to == gather.action and dict(gather.action.params)["c"] == "7"
    assert [(e.kind, e.detail) for e in offer.events] == [("agent_line", "callback 7 offered")]
    unknown = {**owed, "reason": "", "voicemail_url": None, "attempts": 0,
               "requested_at": datetime(2026, 12, 1, 12, 0, 30, tzinfo=timezone.utc)}
    assert said(agent_callbacks.offer(AGENT_CALL, RULES, "alex", unknown, now).verbs)[0] == (
        "A callback is owed to a caller in Español. queue affected. reason: not known. asked 0 seconds ago. "
        "attempt 1 of 3.")
    dialled = agent_callbacks.dialling(AGENT_CALL, "alex", owed, "+15555550100")
    assert said(dialled.verbs) == ["Calling them now."]
    assert [(e.kind, e.detail) for e in dialled.events] == [("agent_line", "callback 7 dialled")]

@pytest.mark.parametrize("outcome, status, heard", [
    ("done", "completed", "The call has ended. Please record its outcome on your desk."),
    ("retry", "no-answer", "They did not answer. We will try again in 15 minutes."),
    ("unreachable", "busy", "They did not answer. That was the last attempt: the callback is closed."),
    (None, "completed", "Looking for the next caller."),  # a result already recorded (Twilio repeated it)
])
def test_after_a_callback_dial_the_agent_hears_how_it_ended_and_the_call_log_says_so(outcome, status, heard):
    """Answered: straight to the next caller (they record the outcome on the desk meanwhile); not answered:
    told whether it will be tried again, then the usual short wait. The step logged on the agent's call says
    which callback and how its dial ended, for whoever reads the call log."""
    from ivr.core import agent_callbacks

    reply = agent_callbacks.dial_ended(AGENT_CALL, "alex", 7, outcome, status, 15)
    assert said(reply.verbs) == [heard]
    answered = outcome == "done"
    following = reply.verbs[-1].to
    assert following.route == "/voice/agent/next" and dict(following.params)["u"] == "alex"
    assert dict(following.params)["a"] == ("0" if answered else "1")  # idle polls so far: the wait starts over
    assert isinstance(reply.verbs[-2], Say if answered else Pause)
    assert [(e.kind, e.detail) for e in reply.events] == [
        ("agent_line", f"callback 7 {outcome or 'already recorded'} ({status})")] and reply.effects == []

def test_an_agent_pressing_for_a_callback_someone_else_took_is_told_so_and_the_line_looks_again():
    from ivr.core import agent_callbacks

    reply = agent_callbacks.not_theirs(AGENT_CALL, "alex")
    assert said(reply.verbs) == ["That callback is no longer yours to make."]
    assert isinstance(reply.verbs[1], Pause) and reply.effects == []
    assert reply.verbs[2].to == AGENT_CALL.link("/voice/agent/next", "alex", a=2)  # still signed in, one poll on


def test_an_agent_who_leaves_a_callback_for_later_stays_signed_in_and_the_line_looks_again():
    from ivr.core import agent_callbacks

    passed = agent_callbacks.passed(AGENT_CALL, "alex")
    assert said(passed.verbs) == ["Left for later."] and isinstance(passed.verbs[1], Pause)
    assert passed.verbs[2].to == AGENT_CALL.link("/voice/agent/next", "alex", a=2)


def test_a_callback_the_line_cannot_open_stays_owed_and_the_agent_is_told_why():
    from ivr.core import agent_callbacks

    reply = agent_callbacks.cannot_open(AGENT_CALL, "alex", 7)
    assert said(reply.verbs) == ["This callback cannot be dialled now: the hotline's data key is missing or wrong. "
                                 "It stays owed. Please tell the operations team."]
    assert reply.verbs[-1].to == AGENT_CALL.link("/voice/agent/next", "alex", a=2) and reply.effects == []
    assert [(e.kind, e.detail) for e in reply.events] == [("agent_line", "callback 7 not dialled: no data key")]


def test_an_agent_whose_session_is_not_valid_hears_it_expired_and_the_call_ends():
    """What a forged or stale agent-line link gets (webhooks/agent_callbacks.py): goodbye, nothing done."""
    reply = agent_line.expired()
    assert said(reply.verbs) == ["This session has expired. Goodbye."] and isinstance(reply.verbs[-1], Hangup)
    assert [(e.kind, e.detail) for e in reply.events] == [("agent_line", "bad session")] and reply.effects == []


def test_a_call_now_link_works_only_for_its_agent_and_callback():
    """The desk's "call now" URL (Twilio requests it when the agent answers) carries a token for that agent and
    callback: another agent, another callback, another key or no agent at all is refused."""
    from ivr.core.agent_callbacks import call_now_ok, call_now_token

    token = call_now_token(SECRET, "alex", 7)
    assert len(token) == 24 and call_now_ok(SECRET, "alex", 7, token)
    assert not call_now_ok(SECRET, "sam", 7, token) and not call_now_ok(SECRET, "alex", 8, token)
    assert not call_now_ok("another key", "alex", 7, token) and not call_now_ok(SECRET, "", 7, token)
    assert not call_now_ok(SECRET, "", 7, call_now_token(SECRET, "", 7))


def test_the_last_good_snapshot_file_gives_back_what_callers_heard():
    """ivr/store/state.py keeps the last state read in a JSON file for when the database is down: read back, it
    is the same announcements, in the same languages."""
    import json

    content = Content(version=3, incident_id=7, incident_title="Card data theft", severity="high",
                      spoken={"en/main": Spoken("We were breached.", None, 1),
                              "es/main": Spoken("Sufrimos una filtración.", None, 2)})
    back = Content.from_json(json.loads(json.dumps(content.to_json())))
    assert back == content and back.find("es", "main", "en") == (Spoken("Sufrimos una filtración.", None, 2), "es")
    assert Content.from_json(json.loads(json.dumps(Content().to_json()))) == Content()
