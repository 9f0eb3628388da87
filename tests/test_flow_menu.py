"""The menu as a caller hears it, from the pure flow rendered as TwiML: keys, silence, languages, the text
message, and the replies when something fails. No app, no database: values in, TwiML out."""
from __future__ import annotations

import re

import pytest

from callers import (BOTH, CALL_SID, LIVE, MESSAGE, NOTHING_PUBLISHED, RULES, VOICE, ctx, full_menu, hear, say,
                     with_french)
from helpers import twiml_of
from ivr.core import flow
from ivr.core.effects import SendSms
from ivr.core.rules import Menu
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.core.verbs import Event, Position


def gather_and_redirect(reply):
    doc = twiml_of(reply, RULES)
    return doc.find("Gather"), doc.find("Redirect")


def test_a_spanish_caller_hears_the_greeting_statement_and_menu_in_spanish_and_english_offering_itself():
    reply = flow.incoming(RULES, LIVE, Position("es"))
    assert hear(reply) == [say("es", "greeting"), say("en", "language_offer", key="3"),
                           ("es-US", "Sufrimos una brecha."), *full_menu("es")]
    gather, redirect = gather_and_redirect(reply)
    assert gather.get("action") == redirect.text == "/voice/menu?l=es&a=0&s=1"
    assert gather.get("timeout") == "6" and gather.get("numDigits") == "1"
    assert reply.events == [Event("call_started", "live")] and reply.outcome == "listening"


def test_without_a_language_key_in_the_menu_no_language_offers_itself():
    options = {k: v for k, v in RULES.menu.options.items() if v != "language"}
    rules = RULES.model_copy(update={"menu": Menu(**{**RULES.menu.model_dump(), "options": options})})
    reply = flow.incoming(rules, LIVE, Position("en"))
    assert hear(reply, rules) == [say("en", "greeting"), ("play", "/media/" + "a" * 64 + ".wav"), say("en", "menu")]


def test_the_last_allowed_step_is_answered_and_the_next_one_ends_the_call_politely_in_the_callers_language():
    last = flow.menu_choice(RULES, LIVE, Position("es", 0, RULES.menu.max_steps), "9", ctx())
    assert last.outcome is None and hear(last)[-2:] == full_menu("es")
    over = flow.menu_choice(RULES, LIVE, Position("es", 0, RULES.menu.max_steps + 1), "9", ctx())
    assert hear(over) == [say("es", "goodbye")] and twiml_of(over, RULES)[-1].tag == "Hangup"
    assert over.events == [Event("goodbye", "max steps")] and over.outcome == "ended-max-steps"


def test_silence_brings_the_full_menu_again_and_counts_one_attempt():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 3), None, ctx())
    assert hear(reply) == [say("es", "no_input"), *full_menu("es")]
    gather, redirect = gather_and_redirect(reply)
    assert gather.get("action") == redirect.text == "/voice/menu?l=es&a=1&s=4"
    assert reply.events == [Event("no_input")] and reply.outcome is None


def test_a_wrong_key_brings_the_short_menu_and_records_the_key_pressed_cut_to_32():
    reply = flow.menu_choice(RULES, LIVE, Position("en", 1, 3), "6", ctx())
    assert hear(reply) == [say("en", "invalid_choice"), say("en", "menu_short")]
    assert gather_and_redirect(reply)[0].get("action") == "/voice/menu?l=en&a=2&s=4"
    assert reply.events == [Event("invalid", digits="6")]
    long = flow.menu_choice(RULES, LIVE, Position("en", 0, 3), "5" * 40, ctx())
    assert long.events == [Event("invalid", digits="5" * 32)]


def test_the_third_failure_in_a_row_says_why_and_goodbye_and_hangs_up():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 2, 5), "6", ctx())
    assert hear(reply) == [say("es", "invalid_choice"), say("es", "too_many_attempts"), say("es", "goodbye")]
    assert [el.tag for el in twiml_of(reply, RULES)] == ["Say", "Say", "Say", "Hangup"]
    assert reply.events == [Event("invalid", digits="6"), Event("goodbye", "max attempts")]
    assert reply.outcome == "ended-no-choice"


def test_a_good_key_after_two_failures_starts_the_count_again():
    reply = flow.menu_choice(RULES, LIVE, Position("en", 2, 4), "2", ctx())
    assert hear(reply) == [("en-US", "Change your password."), say("en", "menu_short")]
    assert gather_and_redirect(reply)[0].get("action") == "/voice/menu?l=en&a=0&s=5"
    assert reply.events == [Event("menu_choice", "advice", "2")]


def test_key_9_repeats_the_statement_with_the_full_menu():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "9", ctx())
    assert hear(reply) == [("es-US", "Sufrimos una brecha."), *full_menu("es")]
    assert reply.events == [Event("menu_choice", "repeat", "9")]


def test_details_not_published_yet_fall_back_to_the_statement_in_the_callers_language():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "1", ctx())
    assert hear(reply) == [("es-US", "Sufrimos una brecha."), say("es", "menu_short")]


def test_a_spanish_caller_with_only_english_published_hears_it_in_the_english_voice():
    english_only = Snapshot("live", Content(spoken={"en/details": Spoken("Names were exposed.")}))
    reply = flow.menu_choice(RULES, english_only, Position("es", 0, 2), "1", ctx())
    assert hear(reply) == [("en-US", "Names were exposed."), say("es", "menu_short")]


@pytest.mark.parametrize("key, missing", [("1", "details_missing"), ("2", "advice_missing"), ("9", "no_announcement")])
def test_with_nothing_published_each_key_says_so_in_the_callers_language(key, missing):
    reply = flow.menu_choice(RULES, NOTHING_PUBLISHED, Position("es", 0, 2), key, ctx())
    assert hear(reply)[0] == say("es", missing)


@pytest.mark.parametrize("fresh, text, heard_first", [
    (True, "We were breached.", ("play", "/media/" + "b" * 64 + ".wav")),  # the published recording
    (False, "We were breached.", ("en-US", "We were breached.")),  # database down: the text needs nothing from us
    (False, None, ("play", "/media/" + "b" * 64 + ".wav")),  # no text to fall back on: the recording anyway
])
def test_the_statement_is_the_recording_unless_the_database_is_down_and_there_is_text(fresh, text, heard_first):
    snap = Snapshot("live", Content(spoken={"en/main": Spoken(text, "b" * 64)}), fresh=fresh)
    assert hear(flow.menu_choice(RULES, snap, Position("en", 0, 2), "9", ctx()))[0] == heard_first


def test_key_4_texts_a_known_caller_and_says_the_reference_in_their_language():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "4", ctx())
    ref = flow.reference(CALL_SID)
    assert hear(reply) == [say("es", "sms_sent", reference=ref), say("es", "sms_repeat_hint")]
    gather, redirect = gather_and_redirect(reply)
    assert gather.get("action") == redirect.text == "/voice/menu?l=es&a=0&s=3&x=sms"
    assert gather.get("timeout") == "6"
    assert reply.effects == [SendSms("es", ref)]
    assert reply.events == [Event("menu_choice", "sms", "4"), Event("sms", ref)]


def test_the_reference_is_stable_for_a_call_and_differs_between_calls():
    assert flow.reference(CALL_SID) == "HL-75AA-1E0E"  # what the caller was told, and the text says, again
    assert re.fullmatch(r"HL-[0-9A-F]{4}-[0-9A-F]{4}", flow.reference("CA" + "2" * 32))
    assert flow.reference("CA" + "2" * 32) != flow.reference(CALL_SID)


def test_a_withheld_number_gets_no_text_but_is_told_why_with_the_short_menu():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "4", ctx(caller_known=False))
    assert hear(reply) == [say("es", "sms_unavailable"), say("es", "menu_short")]
    assert reply.effects == [] and reply.events == [Event("menu_choice", "sms", "4"), Event("sms", "withheld")]


def test_after_the_text_9_says_the_reference_again_and_silence_is_the_full_menu_not_an_error():
    again = flow.menu_choice(RULES, LIVE, Position("en", 0, 3), "9", ctx(), after="sms")
    ref = flow.reference(CALL_SID)
    assert hear(again) == [say("en", "sms_reference", reference=ref), say("en", "sms_repeat_hint")]
    assert gather_and_redirect(again)[0].get("action") == "/voice/menu?l=en&a=0&s=4&x=sms"
    assert again.events == [Event("menu_choice", "sms reference again", "9")] and again.effects == []
    silence = flow.menu_choice(RULES, LIVE, Position("en", 1, 3), None, ctx(), after="sms")
    assert hear(silence) == full_menu("en") and silence.events == []
    assert gather_and_redirect(silence)[0].get("action") == "/voice/menu?l=en&a=1&s=4"
    other = flow.menu_choice(RULES, LIVE, Position("en", 0, 3), "2", ctx(), after="sms")
    assert hear(other)[0] == ("en-US", "Change your password.")


def test_key_3_switches_to_the_only_other_language_at_once_with_the_statement_in_it():
    reply = flow.menu_choice(RULES, LIVE, Position("en", 1, 2), "3", ctx())
    assert hear(reply) == [("es-US", "Sufrimos una brecha."), *full_menu("es")]  # no "you will hear..." first
    assert gather_and_redirect(reply)[0].get("action") == "/voice/menu?l=es&a=0&s=3"
    assert reply.language == "es"
    assert reply.events == [Event("menu_choice", "language", "3"), Event("language", "es")]


def test_with_three_languages_key_3_is_a_menu_where_each_offers_itself_with_its_own_key():
    rules = with_french()
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "3", ctx())
    assert hear(reply, rules) == [say("en", "language_offer", key="1"), say("es", "language_offer", key="2"),
                                  ("fr-FR", "Pour le français, appuyez sur 5.")]
    doc = twiml_of(reply, rules)
    assert doc.find("Gather").get("action") == doc.find("Redirect").text == "/voice/language?l=es&a=0&s=3"
    assert doc.find("Gather").get("timeout") == "6" and reply.language is None


def test_a_language_picked_in_the_language_menu_is_confirmed_in_that_language():
    reply = flow.language_choice(with_french(), LIVE, Position("en", 0, 3), "2", ctx())
    assert hear(reply)[:2] == [say("es", "language_set"), ("es-US", "Sufrimos una brecha.")]
    assert hear(reply)[2] == say("es", "menu")
    assert reply.language == "es" and reply.events == [Event("language", "es", "2")]


def test_another_key_in_the_language_menu_means_what_it_means_in_the_menu_for_this_caller():
    withheld = flow.language_choice(with_french(), LIVE, Position("es", 0, 3), "4", ctx(caller_known=False))
    assert hear(withheld, with_french())[0] == say("es", "sms_unavailable")  # the call's context went along
    assert withheld.language is None and withheld.events[0] == Event("menu_choice", "sms", "4")
    person = flow.language_choice(RULES, MESSAGE, Position("en", 0, 3), "0", ctx())
    assert [e.kind for e in person.events] == ["menu_choice", "route"] and person.outcome == "callback-offered"


def test_silence_in_the_language_menu_goes_back_to_the_menu_in_the_language_they_had():
    reply = flow.language_choice(with_french(), LIVE, Position("es", 1, 3), None, ctx())
    assert hear(reply, with_french())[0] == say("es", "menu")
    assert twiml_of(reply, RULES).find("Gather").get("action") == "/voice/menu?l=es&a=1&s=4"
    assert reply.events == [Event("no_input", "language menu")] and reply.language is None


def test_a_goodbye_key_ends_the_call_in_the_callers_language():
    options = {**RULES.menu.options, "6": "goodbye"}
    rules = RULES.model_copy(update={"menu": Menu(**{**RULES.menu.model_dump(), "options": options})})
    reply = flow.menu_choice(rules, LIVE, Position("es", 0, 2), "6", ctx())
    assert hear(reply, rules) == [say("es", "goodbye")] and twiml_of(reply, rules)[-1].tag == "Hangup"
    assert reply.events == [Event("menu_choice", "goodbye", "6"), Event("goodbye", "caller chose")]
    assert reply.outcome == "ended-by-caller"


def test_a_step_that_failed_gives_the_latest_statement_and_the_menu_counting_a_failure():
    reply = flow.safe_reply(RULES, LIVE, Position("es", 0, 4))
    assert hear(reply) == [say("es", "technical_difficulty"), ("es-US", "Sufrimos una brecha."), *full_menu("es")]
    assert twiml_of(reply, RULES).find("Gather").get("action") == "/voice/menu?l=es&a=1&s=5"
    assert reply.events == [Event("error")] and reply.outcome is None
    second = flow.safe_reply(RULES, LIVE, Position("es", 1, 5))
    assert twiml_of(second, RULES).find("Gather").get("action") == "/voice/menu?l=es&a=2&s=6"


def test_a_fault_that_persists_ends_the_call_politely_instead_of_looping():
    reply = flow.safe_reply(RULES, LIVE, Position("es", RULES.menu.max_attempts - 1, 6))
    assert hear(reply) == [say("es", "technical_difficulty"), ("es-US", "Sufrimos una brecha."), say("es", "goodbye")]
    assert twiml_of(reply, RULES)[-1].tag == "Hangup"
    assert reply.events == [Event("error", "gave up")] and reply.outcome == "ended-error"


def test_twilios_fallback_in_live_mode_reads_the_text_and_queues_the_caller_on_twilios_own_music():
    reply = flow.fallback(RULES, LIVE, Position("en"))
    # The text although a recording exists: the server that serves recordings may be what failed.
    assert hear(reply) == [say("en", "technical_difficulty"), ("en-US", "We were breached."),
                           say("en", "connecting_agent")]
    enqueue = twiml_of(reply, RULES).find("Enqueue")
    assert enqueue.text == "breach-general" and enqueue.get("waitUrl") is None and enqueue.get("action") is None
    assert reply.events == [Event("fallback", "enqueue")] and reply.outcome == "fallback-queued"


def test_twilios_fallback_in_message_mode_says_goodbye_in_the_callers_language():
    reply = flow.fallback(RULES, MESSAGE, Position("es"))
    assert hear(reply) == [say("es", "technical_difficulty"), ("es-US", "Sufrimos una brecha."), say("es", "goodbye")]
    assert twiml_of(reply, RULES).find("Enqueue") is None and twiml_of(reply, RULES)[-1].tag == "Hangup"
    assert reply.events == [Event("fallback", "goodbye")] and reply.outcome == "fallback"


def test_twilios_fallback_with_nothing_published_or_only_a_recording():
    nothing = flow.fallback(RULES, Snapshot("message", Content()), Position("es"))
    assert hear(nothing)[:2] == [say("es", "technical_difficulty"), say("es", "no_announcement")]
    recording = Snapshot("message", Content(spoken={"en/main": Spoken(None, "c" * 64)}))
    assert hear(flow.fallback(RULES, recording, Position("en")))[1] == ("play", "/media/" + "c" * 64 + ".wav")


def test_twilios_fallback_queues_in_the_first_queue_when_the_default_rule_names_none():
    from callers import everyone, with_routing

    rules = with_routing(everyone("callback"))
    enqueue = twiml_of(flow.fallback(rules, LIVE, Position("en")), rules).find("Enqueue")
    assert enqueue.text == "fraud"  # the first queue in the rules


def test_every_prompt_a_spanish_caller_hears_is_in_the_spanish_voice():
    replies = [flow.incoming(RULES, LIVE, Position("es")), flow.safe_reply(RULES, LIVE, Position("es")),
               flow.menu_choice(RULES, LIVE, Position("es", 0, 2), "4", ctx())]
    for reply in replies:
        voices = {lang for lang, text in hear(reply) if text != say("en", "language_offer", key="3")[1]}
        assert voices <= {VOICE["es"], "play"}, reply
    assert BOTH.find("es", "main", "en")[1] == "es"


def test_with_nothing_published_a_failed_step_and_twilios_fallback_still_say_what_is_known():
    reply = flow.safe_reply(RULES, NOTHING_PUBLISHED, Position("es", 0, 4))
    assert hear(reply)[:2] == [say("es", "technical_difficulty"), say("es", "no_announcement")]


def test_twilios_fallback_gives_a_spanish_caller_the_english_statement_when_only_that_is_published():
    english_only = Snapshot("live", Content(spoken={"en/main": Spoken("We were breached.")}))
    reply = flow.fallback(RULES, english_only, Position("es"))
    # The statement in English's voice, the rest in Spanish, then Twilio's own queue.
    assert hear(reply) == [say("es", "technical_difficulty"), ("en-US", "We were breached."),
                           say("es", "connecting_agent")]


def test_with_nothing_published_a_new_call_and_a_language_switch_say_so_in_the_callers_language():
    new_call = flow.incoming(RULES, NOTHING_PUBLISHED, Position("es"))
    assert say("es", "no_announcement") in hear(new_call)
    switched = flow.menu_choice(RULES, NOTHING_PUBLISHED, Position("en", 0, 2), "3", ctx())
    assert hear(switched)[0] == say("es", "no_announcement")


def test_a_spanish_caller_asking_for_details_with_only_the_english_statement_hears_that():
    english_only = Snapshot("live", Content(spoken={"en/main": Spoken("We were breached.")}))
    reply = flow.menu_choice(RULES, english_only, Position("es", 0, 2), "1", ctx())
    assert hear(reply)[0] == ("en-US", "We were breached.")


def test_after_the_text_9_says_the_reference_again_in_spanish():
    reply = flow.menu_choice(RULES, LIVE, Position("es", 0, 3), "9", ctx(), after="sms")
    ref = flow.reference(CALL_SID)
    assert hear(reply) == [say("es", "sms_reference", reference=ref), say("es", "sms_repeat_hint")]


def test_every_menu_waits_as_long_as_the_rules_say():
    rules = with_french(RULES.model_copy(update={"menu": RULES.menu.model_copy(update={"timeout_seconds": 9})}))
    replies = [flow.incoming(rules, LIVE, Position("en")),
               flow.menu_choice(rules, LIVE, Position("en", 0, 2), "3", ctx()),  # the language menu
               flow.menu_choice(rules, LIVE, Position("en", 0, 2), "4", ctx()),  # the menu after the text
               flow.menu_choice(rules, MESSAGE, Position("en", 0, 2), "0", ctx())]  # the callback offer
    for reply in replies:
        assert {g.get("timeout") for g in twiml_of(reply, rules).iter("Gather")} == {"9"}, reply
