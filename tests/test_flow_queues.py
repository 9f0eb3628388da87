"""Asking for a person, as a caller hears it and as the records show it: the queue and priority a request
lands in, the overflows (callback, voicemail, message, dial, goodbye), the hold loop, and how the caller
left the queue. Pure flow rendered as TwiML; no app, no database."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from callers import (LIVE, MESSAGE, NOTHING_PUBLISHED, RULES, SATURDAY_NOON_NEW_YORK, VOICE, ctx, everyone,
                     full_menu, hear, say, with_routing)
from helpers import twiml_of
from ivr.core import flow
from ivr.core.effects import BookCallback, EnterQueue, LeaveQueue
from ivr.core.routing import QueueStats
from ivr.core.rules import Route, Then
from ivr.core.snapshot import Snapshot
from ivr.core.verbs import Event, Position

RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"


def tags(reply, rules=RULES) -> list[str]:
    return [el.tag for el in twiml_of(reply, rules)]


@pytest.mark.parametrize("key, affected, severity, queue, priority, twilio_queue, rule", [
    ("0", False, "critical", "general", 10, "breach-general", "Everyone else"),
    ("0", True, "low", "general", 15, "breach-general-p15",
     "Affected customers otherwise, a little ahead of everyone else"),
    ("7", False, "low", "fraud", 30, "fraud", "Fraud reports go first"),
])
def test_a_request_lands_in_its_queue_and_priority_with_a_hold_loop_in_the_callers_language(
        key, affected, severity, queue, priority, twilio_queue, rule):
    snap = Snapshot("live", dataclasses.replace(LIVE.content, severity=severity))
    reply = flow.menu_choice(RULES, snap, Position("es", 0, 2), key, ctx(affected=lambda: affected))
    assert hear(reply) == [say("es", "connecting_agent")]
    enqueue = twiml_of(reply, RULES).find("Enqueue")
    assert enqueue.text == twilio_queue
    assert enqueue.get("waitUrl") == f"/voice/hold?l=es&q={queue}&p={priority}"
    assert enqueue.get("action") == f"/voice/queue-result?l=es&q={queue}&p={priority}&s=3"
    # The record: which rule sent them, the incident's severity, on the breach list or not. (main keeps the
    # rule's whole name since the whisper says it; this branch's base cut it to 40 characters: both are the rule.)
    (enter,) = reply.effects
    assert enter == EnterQueue(queue, priority, "es", enter.reason, severity, affected)
    assert rule.startswith(enter.reason) and len(enter.reason) >= min(len(rule), 40)
    assert reply.outcome == "queued"
    assert reply.events[:2] == [Event("menu_choice", "agent" if key == "0" else "fraud", key),
                                Event("route", f"enqueue {twilio_queue} (priority {priority}) by rule {rule!r}")]


def test_the_calls_timeline_names_the_rule_that_routed_it_cut_to_400_characters():
    long_name = "Everyone, " + "and I mean everyone " * 30
    rules = with_routing(Route(name=long_name, then=Then(action="enqueue", queue="general")))
    (route,) = [e for e in flow.menu_choice(rules, LIVE, Position("en", 0, 2), "0", ctx()).events if e.kind == "route"]
    assert route.detail == f"enqueue breach-general (priority 10) by rule {long_name!r}"[:400]
    assert len(route.detail) == 400


def test_a_full_queue_offers_its_overflow_voicemail_saying_nobody_is_available():
    full = ctx(queue_stats=lambda: {"general": QueueStats(waiting=RULES.queues["general"].max_size)})
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "0", full)
    assert hear(reply) == [say("es", "agents_unavailable"), say("es", "voicemail_prompt"), *full_menu("es")]
    record = twiml_of(reply, RULES).find("Record")
    assert record.get("action") == "/voice/voicemail?l=es&q=general&p=10&s=3" and record.get("maxLength") == "120"
    assert tags(reply)[-2:] == ["Gather", "Redirect"]  # no recording: the menu, not silence
    assert reply.outcome == "voicemail-offered" and reply.effects == []
    assert reply.events[1].detail.endswith("[overflow: full of general] by rule 'Everyone else'")


def test_a_queue_whose_callers_wait_too_long_overflows_too():
    slow = ctx(queue_stats=lambda: {"general": QueueStats(longest_wait_s=RULES.queues["general"].max_wait_minutes
                                                                         * 60)})
    reply = flow.menu_choice(RULES, LIVE, Position("en", 0, 2), "0", slow)
    assert hear(reply)[:2] == [say("en", "agents_unavailable"), say("en", "voicemail_prompt")]


def test_a_closed_queue_says_the_team_is_not_available_before_its_overflow():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "0", ctx(now=SATURDAY_NOON_NEW_YORK))
    said = hear(reply)
    assert said[0] == say("es", "queue_closed") and say("es", "voicemail_prompt") in said
    assert say("es", "agents_unavailable") not in said
    assert reply.events[1].detail.endswith("[overflow: closed of general] by rule 'Everyone else'")


NIGHT_NEW_YORK = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)  # 03:00 in New York: every queue is closed


@pytest.mark.parametrize("overflow, affected, now, then", [
    ("voicemail", False, SATURDAY_NOON_NEW_YORK, "voicemail_prompt"),
    ("callback", True, NIGHT_NEW_YORK, "callback_offer_later"),
    ("goodbye", False, SATURDAY_NOON_NEW_YORK, "goodbye"),
])
@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_closed_queue_says_when_it_opens_in_the_callers_voice_before_its_overflow(lang, overflow, affected, now,
                                                                                     then):
    pytest.importorskip("ivr.core.opening_hours", reason="closed queues saying their hours (issue 21) not merged")
    rules = with_routing(general={"overflow": overflow}, affected={"overflow": overflow})
    reply = flow.menu_choice(rules, LIVE, Position(lang, 0, 2), "0", ctx(affected=lambda: affected, now=now))
    closed, hours, after = hear(reply, rules)[:3]
    assert closed == say(lang, "queue_closed") and after == say(lang, then)
    assert hours[0] == VOICE[lang] and any(ch.isdigit() for ch in hours[1])  # "... 8 a.m. to 8 p.m. ..."


def test_in_message_mode_a_known_caller_is_offered_a_callback_that_keeps_their_queue_and_priority():
    reply = flow.menu_choice(RULES, MESSAGE, Position("es", 0, 2), "7", ctx())
    assert hear(reply) == [say("es", "agents_unavailable"), say("es", "callback_offer_later"),
                           say("es", "menu_short")]
    offer, menu, redirect = twiml_of(reply, RULES)
    assert offer.get("action") == "/voice/callback?l=es&q=fraud&p=30&s=3" and offer.get("timeout") == "6"
    assert menu.get("action") == redirect.text == "/voice/menu?l=es&a=0&s=3"
    assert reply.outcome == "callback-offered" and reply.effects == []


def test_in_message_mode_a_withheld_caller_is_asked_for_a_voicemail_with_a_number_instead():
    reply = flow.menu_choice(RULES, MESSAGE, Position("es", 0, 2), "0", ctx(caller_known=False))
    assert hear(reply)[:3] == [say("es", "agents_unavailable"), say("es", "callback_unavailable"),
                               say("es", "voicemail_prompt")]
    assert twiml_of(reply, RULES).find("Record").get("action") == "/voice/voicemail?l=es&q=general&p=10&s=3"
    assert reply.outcome == "voicemail-offered"


def test_a_callback_rule_in_live_mode_offers_it_without_saying_nobody_is_there():
    rules = with_routing(everyone("callback", queue="general"))
    reply = flow.menu_choice(rules, LIVE, Position("en", 0, 2), "0", ctx())
    assert hear(reply, rules) == [say("en", "callback_offer_later"), say("en", "menu_short")]


@pytest.mark.parametrize("action, heard_first", [("goodbye", "goodbye"), ("voicemail", "voicemail_prompt")])
def test_a_goodbye_or_voicemail_rule_in_live_mode_does_not_claim_nobody_is_there(action, heard_first):
    rules = with_routing(everyone(action, queue="general"))
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "0", ctx())
    assert hear(reply, rules)[0] == say("es", heard_first)
    assert say("es", "agents_unavailable") not in hear(reply, rules)


def test_a_message_rule_says_its_prompt_then_the_short_menu():
    rules = with_routing(everyone("message", prompt="queue_failed"))
    live = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "0", ctx())
    assert hear(live, rules) == [say("es", "queue_failed"), say("es", "menu_short")]
    assert live.outcome == "agents-unavailable" and "Enqueue" not in tags(live, rules)
    message_mode = flow.menu_choice(rules, MESSAGE, Position("es", 0, 2), "0", ctx())
    assert hear(message_mode, rules)[:2] == [say("es", "agents_unavailable"), say("es", "queue_failed")]


def test_a_queue_that_overflows_to_a_message_says_why_and_serves_the_menu():
    rules = with_routing(general={"overflow": "message"})
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "0", ctx(now=SATURDAY_NOON_NEW_YORK))
    said = hear(reply, rules)
    assert said[0] == say("es", "queue_closed") and said[-1] == say("es", "menu_short")
    assert reply.outcome == "agents-unavailable"


def test_a_queue_that_overflows_to_a_number_dials_it_and_reports_back():
    rules = with_routing(general={"overflow": "dial", "overflow_number": "+15555550199"})
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "0", ctx(now=SATURDAY_NOON_NEW_YORK))
    assert hear(reply, rules) == [say("es", "connecting_agent")]
    dial = twiml_of(reply, rules).find("Dial")
    assert dial.text == "+15555550199" and dial.get("action") == "/voice/queue-result?l=es&a=0&s=3"
    assert reply.outcome == "dialled-overflow" and reply.effects == []


def test_a_queue_that_overflows_to_goodbye_says_why_and_hangs_up():
    rules = with_routing(general={"overflow": "goodbye"})
    full = ctx(queue_stats=lambda: {"general": QueueStats(waiting=10_000)})
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "0", full)
    assert hear(reply, rules) == [say("es", "agents_unavailable"), say("es", "goodbye")]
    assert tags(reply, rules)[-1] == "Hangup" and reply.outcome == "agents-unavailable"


# -- on hold ------------------------------------------------------------------------------------------------
def test_on_hold_a_spanish_caller_hears_everything_in_spanish_then_silence_with_a_key_still_working():
    reply = flow.hold(RULES, LIVE, Position("es"), ctx(recent_wait_minutes=lambda q: 4), "general", 10, 3)
    assert hear(reply) == [say("es", "hold"), say("es", "queue_position", position=3),
                           say("es", "queue_estimate", minutes=4), ("es-US", "Cambie su contraseña."),
                           say("es", "callback_offer")]
    gather, pause = twiml_of(reply, RULES)
    assert gather.get("action") == "/voice/hold-choice?l=es&q=general&p=10" and gather.get("timeout") == "5"
    assert pause.tag == "Pause" and pause.get("length") == str(RULES.hold.pause_seconds)
    assert reply.events == [] and reply.effects == [] and reply.outcome is None


@pytest.mark.parametrize("minutes, estimate", [(None, "queue_no_estimate"), (1, "queue_estimate_one")])
def test_on_hold_a_spanish_caller_hears_no_estimate_or_one_minute_in_spanish(minutes, estimate):
    reply = flow.hold(RULES, LIVE, Position("es"), ctx(recent_wait_minutes=lambda q: minutes), "general", 10, 2)
    assert hear(reply)[2] == say("es", estimate)


def test_on_hold_the_estimate_is_one_minute_or_none_and_an_unknown_queue_has_no_figure():
    one = flow.hold(RULES, LIVE, Position("en"), ctx(recent_wait_minutes=lambda q: 1), "fraud", 30, None)
    assert hear(one)[:2] == [say("en", "hold"), say("en", "queue_estimate_one")]  # no position: none said
    unknown = flow.hold(RULES, LIVE, Position("en"), ctx(recent_wait_minutes=lambda q: 7), "nope", 1, 2)
    assert hear(unknown)[2] == say("en", "queue_no_estimate")
    waits = {"general": 9}
    asked = flow.hold(RULES, LIVE, Position("en"), ctx(recent_wait_minutes=waits.get), "general", 10, 2)
    assert hear(asked)[2] == say("en", "queue_estimate", minutes=9)  # the figure of this queue


def test_on_hold_a_withheld_caller_is_not_offered_a_callback_and_facts_can_be_switched_off():
    rules = RULES.model_copy(update={"hold": RULES.hold.model_copy(update={"repeat_facts": False})})
    reply = flow.hold(rules, LIVE, Position("en"), ctx(caller_known=False), "general", 10, 2)
    assert hear(reply, rules) == [say("en", "hold"), say("en", "queue_position", position=2),
                                  say("en", "queue_no_estimate")]


@pytest.mark.parametrize("tone_s, loop", [(2.0, "10"), (3.0, "7"), (60.0, None)])
def test_on_hold_the_tone_fills_the_pause_inside_the_gather(tone_s, loop):
    reply = flow.hold(RULES, LIVE, Position("en"), ctx(hold_tone=(tone_s, "d" * 64)), "general", 10, 2)
    (gather,) = twiml_of(reply, RULES)
    play = gather[-1]
    assert play.tag == "Play" and play.text == "/media/" + "d" * 64 + ".wav" and play.get("loop") == loop
    assert gather.get("timeout") == "1"


def test_key_1_on_hold_books_a_callback_that_keeps_the_place_and_leaves_the_queue():
    reply = flow.hold_choice(RULES, LIVE, Position("es"), ctx(), "fraud", 30, "1")
    assert hear(reply) == [say("es", "callback_confirmed")] and tags(reply) == ["Say", "Leave"]
    assert reply.effects == [BookCallback("fraud", 30, "asked while on hold", keep_place=True)]
    assert reply.events == [Event("callback", "from queue fraud")] and reply.outcome == "callback"


@pytest.mark.parametrize("known, digits, said", [(True, "2", []), (True, None, []),
                                                 (False, "1", [say("es", "callback_unavailable")])])
def test_any_other_key_on_hold_or_a_withheld_number_goes_back_to_holding(known, digits, said):
    reply = flow.hold_choice(RULES, LIVE, Position("es"), ctx(caller_known=known), "fraud", 30, digits)
    assert hear(reply) == said and reply.effects == [] and reply.outcome is None
    assert twiml_of(reply, RULES).find("Redirect").text == "/voice/hold?l=es&q=fraud&p=30"


def test_accepting_a_callback_offer_books_it_and_says_goodbye():
    reply = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(), "fraud", 30, "1")
    assert hear(reply) == [say("es", "callback_confirmed")] and tags(reply) == ["Say", "Hangup"]
    assert reply.effects == [BookCallback("fraud", 30, "callback offered")]
    assert reply.events == [Event("callback", "offered and accepted")] and reply.outcome == "callback"
    no_queue = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(), None, 5, "1")
    assert no_queue.effects == [BookCallback("", 5, "callback offered")]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_second_callback_request_from_the_same_number_is_told_it_refreshed_the_first(lang):
    """One number has one callback owed: asking again keeps the first's place, and the caller hears so."""
    reply = flow.callback_choice(RULES, MESSAGE, Position(lang, 0, 3), ctx(open_callback=lambda: True), "fraud",
                                 30, "1")
    assert hear(reply) == [say(lang, "callback_refreshed")] and tags(reply) == ["Say", "Hangup"]
    assert reply.effects == [BookCallback("fraud", 30, "callback offered")]


def test_a_withheld_caller_accepting_a_callback_is_told_why_not_and_served_the_menu():
    reply = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(caller_known=False), "general", 10, "1")
    assert hear(reply) == [say("es", "callback_unavailable"), *full_menu("es")] and reply.effects == []


def test_on_hold_with_nothing_published_the_facts_are_the_standing_advice():
    reply = flow.hold(RULES, NOTHING_PUBLISHED, Position("es"), ctx(), "general", 10, 2)
    assert say("es", "advice_missing") in hear(reply)


def test_another_key_after_a_callback_offer_is_a_menu_choice():
    advice = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(), "general", 10, "2")
    assert hear(advice)[0] == ("es-US", "Cambie su contraseña.") and advice.effects == []
    silence = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(), "general", 10, None)
    assert hear(silence)[0] == say("es", "no_input") and silence.events == [Event("no_input")]
    # The call's context goes along: a withheld number pressing 4 is told why no text comes.
    withheld = flow.callback_choice(RULES, MESSAGE, Position("es", 0, 3), ctx(caller_known=False), "general", 10, "4")
    assert hear(withheld)[0] == say("es", "sms_unavailable")


def test_a_voicemail_left_books_a_callback_with_the_recording_and_says_goodbye():
    reply = flow.voicemail_left(RULES, MESSAGE, Position("es", 0, 3), "general", 10, RECORDING)
    assert hear(reply) == [say("es", "voicemail_thanks")] and tags(reply) == ["Say", "Hangup"]
    assert reply.effects == [BookCallback("general", 10, "voicemail", voicemail_url=RECORDING)]
    assert reply.events == [Event("voicemail")] and reply.outcome == "voicemail"
    no_queue = flow.voicemail_left(RULES, MESSAGE, Position("es", 0, 3), None, 7, RECORDING)
    assert no_queue.effects == [BookCallback("", 7, "voicemail", voicemail_url=RECORDING)]


def test_no_recording_is_no_voicemail_the_caller_gets_the_menu():
    reply = flow.voicemail_left(RULES, MESSAGE, Position("es", 0, 3), "general", 10, None)
    assert hear(reply) == full_menu("es") and reply.effects == [] and reply.events == [] and reply.outcome is None


# -- leaving the queue: every QueueResult Twilio posts to the Enqueue action --------------------------------
# twilio.com/docs/voice/twiml/enqueue#attributes-action-parameters lists: bridged, bridging-in-process, error,
# hangup, leave, redirected, redirected-from-bridged, queue-full, system-error (and system-shutdown).
@pytest.mark.parametrize("result, outcome, verbs", [
    ("bridged", "agent", ["Hangup"]),  # talked to an agent; the call ends when they are done
    ("bridging-in-process", "agent", ["Hangup"]),
    ("redirected-from-bridged", "agent", ["Hangup"]),
    ("hangup", "abandoned", ["Hangup"]),  # the caller gave up waiting
    ("leave", "callback", ["Hangup"]),  # key 1 on hold: a callback keeps their place
    ("redirected", "redirected", []),  # moved elsewhere by the REST API: nothing more from us
])
def test_leaving_the_queue_records_how_and_says_nothing_more(result, outcome, verbs):
    reply = flow.queue_result(RULES, LIVE, Position("es", 0, 4), result, 61)
    assert tags(reply) == verbs and hear(reply) == []
    assert reply.outcome == outcome and reply.effects == [LeaveQueue(result, 61)]
    assert reply.events == [Event("queue", result)]


@pytest.mark.parametrize("result", ["queue-full", "error", "system-error", "system-shutdown", ""])
def test_a_queue_that_failed_says_so_in_the_callers_language_and_serves_the_menu(result):
    reply = flow.queue_result(RULES, LIVE, Position("es", 2, 4), result)
    assert hear(reply) == [say("es", "queue_failed"), say("es", "agents_unavailable"), say("es", "menu_short")]
    assert twiml_of(reply, RULES).find("Gather").get("action") == "/voice/menu?l=es&a=0&s=5"
    recorded = result or "unknown"
    assert reply.outcome == f"queue-{recorded}" and reply.events == [Event("queue", recorded)]
    assert reply.effects == [LeaveQueue(recorded, None)]
