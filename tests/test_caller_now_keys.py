"""What each menu key gets, in the words `ivr status`, the dashboard and /healthz show (ivr/core/caller_now.py):
every routing action, every reason a queue overflows, a caller on the breach list told apart, and the
language key. Pure: the rules, a snapshot and the clock in."""
from __future__ import annotations

import datetime as dt

import pytest

from callers import with_french, with_routing
from ivr.core.caller_now import caller_now, in_mode
from ivr.core.routing import QueueStats
from ivr.core.rules import Route, Then, When
from test_caller_now import SHIPPED, SUNDAY, snapshot

MONDAY_NOON = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.timezone.utc)  # the general queue is open
LIVE = in_mode(snapshot(en_main=("Cards were taken.", None, 1, "tts", 1.0)), "live")
OPEN = "waits in queue general for an agent (it is open until Mon 20:00 America/New_York)"
FRAUD = "waits in queue fraud for an agent (it is always open)"


def gets(rules, snap=LIVE, now=MONDAY_NOON, stats=None, lang="en") -> dict[str, str]:
    """Key -> what a caller pressing it gets, for the keys the routing rules decide (7: fraud, 0: a person)."""
    return {k.key: k.gets for k in caller_now(rules, snap, now, stats).language(lang).keys if k.decision is not None}


def everyone(then: Then):
    return with_routing(Route(name="All", then=then), rules=SHIPPED)


def test_the_shipped_rules_in_live_and_message_mode_and_when_the_queue_is_closed():
    assert gets(SHIPPED) == {"7": FRAUD, "0": OPEN}
    callback = "is offered a callback (rule 'Nobody is taking calls in message mode; offer a callback')"
    assert gets(SHIPPED, in_mode(LIVE, "message")) == {"7": callback, "0": callback}
    assert gets(SHIPPED, now=SUNDAY)["0"] == (
        "is asked to leave a voicemail: queue general is closed; opens Mon 2026-12-07 08:00 America/New_York")


def test_a_full_queue_and_one_waiting_too_long_say_why_callers_do_not_wait():
    """The queue's figures reach routing: 1,000 waiting (its max_size), or a wait past its 30 minutes."""
    assert gets(SHIPPED, stats={"general": QueueStats(waiting=999, longest_wait_s=60)})["0"] == OPEN
    assert gets(SHIPPED, stats={"general": QueueStats(waiting=1000, longest_wait_s=60)})["0"] == (
        "is asked to leave a voicemail: queue general is full")
    assert gets(SHIPPED, stats={"general": QueueStats(waiting=3, longest_wait_s=31 * 60)})["0"] == (
        "is asked to leave a voicemail: queue general is waiting too long")
    queued = with_routing(Route(name="Everyone", then=Then(action="enqueue", queue="general")), rules=SHIPPED)
    assert gets(queued, in_mode(LIVE, "message"))["0"] == (
        "is asked to leave a voicemail: the hotline is in message mode")


@pytest.mark.parametrize("then, words", [
    (Then(action="message", prompt="goodbye"), "hears the 'goodbye' message (rule 'All')"),
    (Then(action="dial", number="+12125550123"), "is put through to +12125550123 (rule 'All')"),
    (Then(action="goodbye"), "hears goodbye; the call ends (rule 'All')"),
    (Then(action="voicemail"), "is asked to leave a voicemail (rule 'All')"),
    (Then(action="callback"), "is offered a callback (rule 'All')"),
], ids=lambda v: getattr(v, "action", ""))
def test_every_routing_action_in_words(then, words):
    assert gets(everyone(then)) == {"7": words, "0": words}


def test_a_caller_on_the_breach_list_is_told_apart_only_where_their_rule_differs():
    """The list moves a caller ahead (ivr/core/routing.py); where their rule is another one, the key says so."""
    rules = with_routing(Route(name="Listed callers first", when=When(affected=True),
                               then=Then(action="callback", queue="general", priority=30)),
                         Route(name="Everyone", then=Then(action="callback", queue="general")), rules=SHIPPED)
    key = caller_now(rules, LIVE, MONDAY_NOON).language("en").key("0")
    assert (key.gets, key.decision.rule, key.decision.priority) == (
        "is offered a callback (rule 'Everyone')", "Everyone", 10)
    assert (key.affected_gets, key.affected_decision.rule, key.affected_decision.priority) == (
        "is offered a callback (rule 'Listed callers first')", "Listed callers first", 30)
    assert key.queue.name == "general" and key.queue.open
    shipped = caller_now(SHIPPED, LIVE, MONDAY_NOON).language("en").key("0")  # the list only moves them ahead
    assert (shipped.affected_gets, shipped.affected_decision) == (None, None)


def test_the_language_key_switches_between_two_languages_and_offers_a_menu_among_more():
    assert caller_now(SHIPPED, LIVE, MONDAY_NOON).language("es").key("3").gets == "switches to English"
    three = caller_now(with_french(SHIPPED), LIVE, MONDAY_NOON)
    assert three.language("en").key("3").gets == "chooses among Español, Français"
    assert three.language("fr").key("3").gets == "chooses among English, Español"


def test_the_keys_routing_does_not_decide_say_what_the_caller_hears():
    """A topic published as it stands, the verify key, and a goodbye key (the rules accept one)."""
    snap = in_mode(snapshot(en_main=("Cards were taken.", None, 1, "tts", 1.0),
                            en_details=("Names and cards.", None, 2, "tts", 2.0)), "live")
    options = {**SHIPPED.menu.options, "6": "goodbye"}
    rules = SHIPPED.model_copy(update={"menu": SHIPPED.menu.model_copy(update={"options": options})})
    keys = {k.key: k.gets for k in caller_now(rules, snap, MONDAY_NOON).language("en").keys}
    assert keys["1"] == "hears en/details v2"  # this incident's own, after the main statement: nothing to add
    assert keys["8"] == "is asked for the reference on our notice"
    assert keys["6"] == "hears goodbye; the call ends"
    assert keys["9"] == "hears en/main v1 again"
