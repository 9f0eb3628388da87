"""The breach list and routing, pure: the priority an unverified caller on the list gets (everyone's queue,
ahead in line), a verified caller's own queue, and which rules `ivr rules check` warns about (line, field and
sentence) because they would make the list audible to anyone who fakes a caller ID."""
from __future__ import annotations

import datetime as dt

from ivr.config import PROJECT_ROOT
from ivr.core.routing import QueueStats, Situation, decide
from ivr.core.rules import load, parse, warnings

SHIPPED_TEXT = (PROJECT_ROOT / "routing_rules.yaml").read_text()
RULES = load(PROJECT_ROOT / "routing_rules.yaml")
OPEN = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.timezone.utc)  # a Tuesday, 10:00 in New York: all open
NIGHT = dt.datetime(2026, 12, 2, 5, 0, tzinfo=dt.timezone.utc)  # 00:00 in New York: all closed
HIGH = "Affected customers during a high or critical incident, ahead of everyone else"
VERIFIED = "Verified affected customers during a high or critical incident"
WHY = ("Anyone can fake a caller ID, so until verified they get everyone's, with only this rule's priority (a "
       "queue, message or hours of their own: `verified: true`)")


def situation(**kw):
    base = dict(mode="live", menu="agent", severity="high", affected=False, now=OPEN, queues={})
    return Situation(**{**base, **kw})


def text_with(routing: str, queues: dict[str, str] | None = None) -> str:
    """The shipped rules with this routing, and queue settings replaced (old line -> new line)."""
    start, end = SHIPPED_TEXT.index("routing:\n"), SHIPPED_TEXT.index("\n# The agent line and desk")
    text = SHIPPED_TEXT[:start] + routing + SHIPPED_TEXT[end:]
    for old, new in (queues or {}).items():
        assert old in text
        text = text.replace(old, new, 1)
    return text


def checked(routing: str, queues: dict[str, str] | None = None) -> list[tuple[int, str, str]]:
    """What `ivr rules check` warns about: (line, field, sentence) in the order it prints them."""
    text = text_with(routing, queues)
    return [(w.line, w.field, w.message) for w in warnings(text, parse(text))]


def line_of(routing: str, fragment: str) -> int:
    """The line number in the whole file of the routing line holding `fragment`."""
    text = text_with(routing)
    return text[:text.index(fragment)].count("\n") + 1


# -- what an unverified caller on the list gets: everyone's answer, at most ahead in line -------------------------
def test_an_unverified_caller_on_the_list_waits_in_everyones_queue_ahead_in_line_named_by_the_lists_rule():
    d = decide(RULES, situation(affected=True))
    assert (d.action, d.queue, d.priority, d.twilio_queue, d.rule) == (
        "enqueue", "general", 20, "breach-general-p20", HIGH)
    assert d.describe() == f"enqueue breach-general-p20 (priority 20) by rule {HIGH!r}"
    everyone = decide(RULES, situation())
    assert (everyone.queue, everyone.priority, everyone.twilio_queue, everyone.rule) == (
        "general", 10, "breach-general", "Everyone else")


def test_a_verified_caller_gets_the_rules_own_queue_whether_or_not_their_caller_id_is_listed():
    for affected in (False, True):
        d = decide(RULES, situation(verified=True, affected=affected))
        assert (d.action, d.queue, d.priority, d.twilio_queue, d.rule) == (
            "enqueue", "affected", 20, "affected", VERIFIED), affected
    # Below high severity the verified rule does not apply: the list's own rule does, with its queue.
    low = decide(RULES, situation(verified=True, severity="low"))
    assert (low.queue, low.priority, low.twilio_queue) == ("general", 15, "breach-general-p15")


def test_where_everyone_gets_a_callback_or_voicemail_the_list_keeps_only_a_better_place_for_it():
    # Message mode: everyone is offered a callback; the list's callback keeps its place at 20, no Twilio queue.
    d = decide(RULES, situation(mode="message", affected=True))
    assert (d.action, d.queue, d.priority, d.twilio_queue, d.overflow) == ("callback", "general", 20, None, None)
    # General closed at night: everyone's voicemail, the listed caller's kept at the list rule's priority.
    night = decide(RULES, situation(now=NIGHT, affected=True))
    assert (night.action, night.queue, night.priority, night.twilio_queue, night.overflow, night.rule) == (
        "voicemail", "general", 20, None, "closed", HIGH)


EQUAL_OR_LOWER = """routing:
  - name: listed, the same priority
    when: {affected: true, severity_at_least: high}
    then: {action: enqueue, queue: general, priority: 10}
  - name: listed, behind everyone
    when: {affected: true}
    then: {action: enqueue, queue: general, priority: 5}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_list_rule_that_gives_no_better_place_leaves_the_caller_exactly_as_everyone():
    rules = parse(text_with(EQUAL_OR_LOWER))
    for severity in ("high", "low"):
        d = decide(rules, situation(affected=True, severity=severity))
        assert (d.queue, d.priority, d.twilio_queue, d.rule) == ("general", 10, "breach-general", "everyone"), severity
    assert checked(EQUAL_OR_LOWER) == []  # nothing audible either: only the place in line differs


NO_PLACE = """routing:
  - name: listed, in line
    when: {affected: true, menu: [agent]}
    then: {action: enqueue, queue: general, priority: 20}
  - name: listed fraud reports, goodbye
    when: {affected: true, menu: [fraud]}
    then: {action: goodbye}
  - name: fraud, in line
    when: {menu: [fraud]}
    then: {action: enqueue, queue: fraud}
  - name: everyone, goodbye
    then: {action: goodbye}
"""


def test_with_no_place_in_line_on_either_side_the_caller_gets_everyones_answer():
    rules = parse(text_with(NO_PLACE))
    d = decide(rules, situation(affected=True))  # everyone hears goodbye: so does the listed caller
    assert (d.action, d.queue, d.priority, d.rule) == ("goodbye", None, None, "everyone, goodbye")
    fraud = decide(rules, situation(affected=True, menu="fraud"))  # the list's goodbye: everyone's queue instead
    assert (fraud.action, fraud.queue, fraud.priority, fraud.twilio_queue, fraud.rule) == (
        "enqueue", "fraud", 30, "fraud", "fraud, in line")
    # `ivr rules check` names both rules, by line, with the field that differs.
    assert [(line, field) for line, field, _ in checked(NO_PLACE)] == [
        (line_of(NO_PLACE, "then: {action: enqueue, queue: general, priority: 20}"), "routing.0.then.queue"),
        (line_of(NO_PLACE, "then: {action: goodbye}"), "routing.1.then.queue")]


# -- which rules `ivr rules check` warns about: line, field and what it says -------------------------------------
OWN_QUEUE = """routing:
  - name: message mode voicemail
    when: {mode: message}
    then: {action: voicemail}
  - name: listed, a queue of their own
    when: {affected: true}
    then: {action: enqueue, queue: affected}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_queue_of_their_own_for_the_list_is_named_once_at_its_rule_with_both_answers():
    """The voicemail a rule offers in message mode keeps the place the caller has in live mode: that place is
    the listed rule's doing, so only that rule is named, with what each caller would get and why not."""
    [(line, field, message)] = checked(OWN_QUEUE)
    assert (line, field) == (line_of(OWN_QUEUE, "then: {action: enqueue, queue: affected}"), "routing.1.then.queue")
    assert message.startswith("the breach list would be audible: on it by caller ID, ")
    assert "of affected] by rule 'listed, a queue of their own'; everyone else, " in message
    assert message.endswith(f"by rule 'everyone'. {WHY}")
    # What the rule promises, a caller who keyed in their reference does get, caller ID on the list or not.
    for affected in (False, True):
        d = decide(parse(text_with(OWN_QUEUE)), situation(verified=True, affected=affected))
        assert (d.queue, d.priority, d.twilio_queue, d.rule) == (
            "affected", 20, "affected", "listed, a queue of their own"), affected


NOT_LISTED_FIRST = """routing:
  - name: not on the list
    when: {affected: false}
    then: {action: enqueue, queue: general}
  - name: everyone else
    then: {action: enqueue, queue: affected}
"""


def test_a_rule_for_callers_not_on_the_list_is_named_when_it_comes_first():
    """`affected: false` makes the list audible just as well: the earlier of the two rules is the one named."""
    assert [(line, field) for line, field, _ in checked(NOT_LISTED_FIRST)] == [
        (line_of(NOT_LISTED_FIRST, "then: {action: enqueue, queue: general}"), "routing.0.then.queue")]
    d = decide(parse(text_with(NOT_LISTED_FIRST)), situation(affected=True))
    # The listed caller waits in general like everyone, with the priority of the rule they would have had.
    assert (d.queue, d.priority, d.twilio_queue, d.rule) == ("general", 20, "breach-general-p20", "everyone else")


CALLBACK_WHEN_CLOSED = """routing:
  - name: listed, a callback while general is closed
    when: {affected: true, queue: general, queue_open: false}
    then: {action: callback}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_callback_for_the_list_where_everyone_gets_the_queues_overflow_is_named_at_the_rule():
    """Same queue, but the listed caller would skip general's overflow (voicemail): the warning points at the
    rule's `then` (field `queue`: what decides the overflow) and says what each caller would get."""
    [(line, field, message)] = checked(CALLBACK_WHEN_CLOSED)
    assert (line, field) == (line_of(CALLBACK_WHEN_CLOSED, "then: {action: callback}"), "routing.0.then.queue")
    assert "on it by caller ID, callback by rule 'listed, a callback while general is closed'; everyone else, " \
           "voicemail [overflow: closed of general] by rule 'everyone'" in message
    night = decide(parse(text_with(CALLBACK_WHEN_CLOSED)), situation(affected=True, now=NIGHT))
    assert (night.action, night.overflow) == ("voicemail", "closed")


# -- every case the rules can tell apart is checked: each threshold, mode and menu ----------------------------
AT_THRESHOLDS = """routing:
  - name: a line of 8 or more, general for everyone
    when: {queue: general, queue_size_at_least: 8}
    then: {action: enqueue, queue: general}
  - name: listed, their own queue from 7 waiting
    when: {affected: true, queue: general, queue_size_at_least: 7}
    then: {action: enqueue, queue: affected}
  - name: a wait of 61 minutes or more, general for everyone
    when: {queue: general, longest_wait_at_least_minutes: 61}
    then: {action: enqueue, queue: general}
  - name: listed, their own queue from a 60-minute wait
    when: {affected: true, queue: general, longest_wait_at_least_minutes: 60}
    then: {action: enqueue, queue: affected}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_rule_audible_only_at_exactly_its_queue_size_or_wait_is_named():
    """7 waiting (not 8), a 60-minute wait (not 61): the only loads where these rules say more are found."""
    assert [(line, field) for line, field, _ in checked(AT_THRESHOLDS)] == [
        (line_of(AT_THRESHOLDS, "then: {action: enqueue, queue: affected}"), "routing.1.then.queue"),
        (line_of(AT_THRESHOLDS, "60}\n    then: {action: enqueue, queue: affected}") + 1, "routing.3.then.queue")]


LONG_AND_SLOW = """routing:
  - name: listed, their own queue when general is long and slow
    when: {affected: true, queue: general, queue_size_at_least: 100, longest_wait_at_least_minutes: 10}
    then: {action: enqueue, queue: affected}
  - name: everyone
    then: {action: enqueue, queue: general}
"""
WHILE_EMPTY = """routing:
  - name: anyone waiting, general for everyone
    when: {queue: general, queue_size_at_least: 1}
    then: {action: enqueue, queue: general}
  - name: any wait, general for everyone
    when: {queue: general, longest_wait_at_least_minutes: 1}
    then: {action: enqueue, queue: general}
  - name: listed, their own queue while general is empty
    when: {affected: true}
    then: {action: enqueue, queue: affected}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_rule_audible_only_when_queues_are_both_long_and_slow_or_only_when_empty_is_named():
    assert [field for _, field, _ in checked(LONG_AND_SLOW)] == ["routing.0.then.queue"]
    assert [field for _, field, _ in checked(WHILE_EMPTY)] == ["routing.2.then.queue"]


BOTH_AT_ONCE = """routing:
  - name: a line of 8 or more, general for everyone
    when: {queue: general, queue_size_at_least: 8}
    then: {action: enqueue, queue: general}
  - name: listed, their own queue when 7 have waited an hour
    when: {affected: true, queue: general, queue_size_at_least: 7, longest_wait_at_least_minutes: 60}
    then: {action: enqueue, queue: affected}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_a_rule_audible_only_at_one_queue_size_together_with_one_wait_is_named():
    """7 waiting with an hour's wait: each threshold alone is not enough, and at 8 the rule before takes over,
    so only that size and that wait at once show the listed caller a queue of their own."""
    assert [(line, field) for line, field, _ in checked(BOTH_AT_ONCE)] == [
        (line_of(BOTH_AT_ONCE, "then: {action: enqueue, queue: affected}"), "routing.1.then.queue")]


BY_MODE = """routing:
  - name: listed, goodbye while agents are on
    when: {mode: live, affected: true}
    then: {action: goodbye}
  - name: listed, goodbye in message mode
    when: {mode: message, affected: true}
    then: {action: goodbye}
  - name: everyone
    then: {action: enqueue, queue: general}
"""


def test_rules_audible_only_in_one_mode_or_for_one_menu_key_are_each_named():
    assert [field for _, field, _ in checked(BY_MODE)] == ["routing.0.then.queue", "routing.1.then.queue"]
    assert [field for _, field, _ in checked(NO_PLACE)] == ["routing.0.then.queue", "routing.1.then.queue"]


# -- ... and each queue's hours: a rule that says more only while a queue is open ------------------------------
WHILE_OPEN = """routing:
  - name: listed, goodbye while {queue} is open
    when: {{affected: true, queue: {queue}, queue_open: true}}
    then: {{action: goodbye}}
  - name: everyone
    then: {{action: enqueue, queue: general}}
"""
FRAUD_HOURS = {"    overflow: callback     # closed,": "    hours: {timezone: America/New_York, open: '08:00', "
                                                   "close: '09:00', days: [mon, tue, wed, thu, fri, sat, sun]}\n"
                                                   "    overflow: callback     # closed,"}


def test_a_rule_audible_only_while_a_queue_is_open_is_named_whichever_queue_has_hours():
    # General is open weekdays 8 to 8 in New York; the queue listed before it (fraud) has no hours at all.
    assert [field for _, field, _ in checked(WHILE_OPEN.format(queue="general"))] == ["routing.0.then.queue"]
    # Fraud open one hour a day: that hour is found too, whatever the queues after it open and close.
    assert [field for _, field, _ in checked(WHILE_OPEN.format(queue="fraud"), FRAUD_HOURS)] == [
        "routing.0.then.queue"]
