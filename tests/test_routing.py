"""The routing rules, table-driven: who goes to which queue at which priority, and every overflow."""
from __future__ import annotations

import datetime as dt

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core.routing import QueueStats, Situation, decide
from ivr.core.rules import RulesInvalid, load, parse

RULES = load(PROJECT_ROOT / "routing_rules.yaml")
# A Tuesday at 10:00 in New York: every shipped queue is open.
OPEN = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.timezone.utc)
NIGHT = dt.datetime(2026, 12, 2, 5, 0, tzinfo=dt.timezone.utc)  # 00:00 in New York: all closed
SATURDAY = dt.datetime(2026, 12, 5, 15, 0, tzinfo=dt.timezone.utc)  # general is closed on weekends
CHRISTMAS = dt.datetime(2026, 12, 25, 15, 0, tzinfo=dt.timezone.utc)


def situation(**kw):
    base = dict(mode="live", menu="agent", severity="high", affected=False, now=OPEN, queues={})
    base.update(kw)
    return Situation(**base)


@pytest.mark.parametrize("case,kw,action,queue,priority", [
    ("unaffected caller, high severity", {}, "enqueue", "general", 10),
    # On the list by caller ID alone: where everyone goes, ahead in line (a caller ID proves nothing).
    ("affected caller, high severity", {"affected": True}, "enqueue", "general", 20),
    ("affected caller, critical severity", {"affected": True, "severity": "critical"}, "enqueue", "general", 20),
    ("verified caller, high severity", {"verified": True}, "enqueue", "affected", 20),
    ("verified caller, low severity", {"verified": True, "severity": "low"}, "enqueue", "general", 15),
    ("affected caller, low severity", {"affected": True, "severity": "low"}, "enqueue", "general", 15),
    ("affected caller, medium severity", {"affected": True, "severity": "medium"}, "enqueue", "general", 15),
    ("unaffected caller, critical", {"severity": "critical"}, "enqueue", "general", 10),
    ("fraud report beats everything", {"menu": "fraud", "affected": True}, "enqueue", "fraud", 30),
    # A callback keeps the queue and priority the caller would have had in live mode.
    ("message mode: a callback offer", {"mode": "message", "affected": True}, "callback", "general", 20),
    ("message mode, verified", {"mode": "message", "verified": True}, "callback", "affected", 20),
    ("message mode, fraud: still a callback", {"mode": "message", "menu": "fraud"}, "callback", "fraud", 30),
])
def test_who_goes_where(case, kw, action, queue, priority):
    d = decide(RULES, situation(**kw))
    assert (d.action, d.queue, d.priority) == (action, queue, priority), case
    if action == "enqueue":
        assert d.twilio_queue == RULES.twilio_queue(queue, priority) and len(d.twilio_queue) <= 64


def test_priority_overrides_get_their_own_twilio_queue():
    assert RULES.twilio_queue("general") == "breach-general"
    assert RULES.twilio_queue("general", 15) == "breach-general-p15"
    assert RULES.twilio_queue("fraud", 30) == "fraud"


@pytest.mark.parametrize("case,kw,action,reason", [
    ("general closed at night: voicemail", {"now": NIGHT}, "voicemail", "closed"),
    ("general closed on Saturday", {"now": SATURDAY}, "voicemail", "closed"),
    ("holiday", {"now": CHRISTMAS, "verified": True}, "callback", "closed"),
    ("affected queue open on Saturday", {"now": SATURDAY, "verified": True}, "enqueue", None),
    ("unverified: general's hours like everyone", {"now": SATURDAY, "affected": True}, "voicemail", "closed"),
    ("general full", {"queues": {"general": QueueStats(1000, 10)}}, "voicemail", "full"),
    ("general nearly full", {"queues": {"general": QueueStats(999, 10)}}, "enqueue", None),
    ("general too slow", {"queues": {"general": QueueStats(5, 30 * 60)}}, "voicemail", "wait"),
    ("affected too slow", {"verified": True, "queues": {"affected": QueueStats(5, 20 * 60)}}, "callback", "wait"),
    ("fraud full", {"menu": "fraud", "queues": {"fraud": QueueStats(200, 0)}}, "callback", "full"),
])
def test_overflow_by_time_size_and_wait(case, kw, action, reason):
    d = decide(RULES, situation(**kw))
    assert (d.action, d.overflow) == (action, reason), case


def _rules_with(routing: str, extra: str = ""):
    text = (PROJECT_ROOT / "routing_rules.yaml").read_text()
    start = text.index("routing:\n")
    end = text.index("\nhold:")
    return parse(text[:start] + routing + extra + text[end:])


def test_queue_state_conditions():
    rules = _rules_with("""routing:
  - name: long wait for general, offer a callback
    when: {queue: general, longest_wait_at_least_minutes: 10}
    then: {action: callback}
  - name: big queue, play a message
    when: {queue: general, queue_size_at_least: 50}
    then: {action: message, prompt: agents_unavailable}
  - name: closed general, goodbye
    when: {queue: general, queue_open: false}
    then: {action: goodbye}
  - name: everyone
    then: {action: enqueue, queue: general}
""")
    assert decide(rules, situation(queues={"general": QueueStats(3, 11 * 60)})).action == "callback"
    assert decide(rules, situation(queues={"general": QueueStats(60, 0)})).action == "message"
    assert decide(rules, situation(now=NIGHT)).action == "goodbye"
    assert decide(rules, situation()).action == "enqueue"


@pytest.mark.parametrize("routing,message", [
    ("""routing:
  - name: to nowhere
    then: {action: enqueue, queue: nowhere}
""", "unknown queue 'nowhere'"),
    ("""routing:
  - name: everyone
    then: {action: enqueue, queue: general}
  - name: never
    when: {affected: true}
    then: {action: enqueue, queue: affected}
""", "can never match"),
    ("""routing:
  - name: affected
    when: {affected: true}
    then: {action: enqueue, queue: affected}
  - name: affected and high, shadowed
    when: {affected: true, severity_at_least: high}
    then: {action: enqueue, queue: fraud}
  - name: everyone
    then: {action: enqueue, queue: general}
""", "rule 1 ('affected') matches every call it would"),
    ("""routing:
  - name: only affected
    when: {affected: true}
    then: {action: enqueue, queue: affected}
""", "the last rule must have no conditions"),
    ("""routing:
  - name: severe
    when: {severity_at_least: apocalyptic}
    then: {action: goodbye}
  - name: everyone
    then: {action: enqueue, queue: general}
""", "unknown severity 'apocalyptic'"),
    ("""routing:
  - name: play something
    when: {affected: true}
    then: {action: message, prompt: no_such_prompt}
  - name: everyone
    then: {action: enqueue, queue: general}
""", "prompt 'no_such_prompt' is missing"),
])
def test_bad_routing_is_refused_with_line_and_field(routing, message):
    with pytest.raises(RulesInvalid) as err:
        _rules_with(routing)
    text = str(err.value)
    assert message in text and "line " in text and "routing" in text


def test_bad_hours_and_placeholders_are_refused():
    text = (PROJECT_ROOT / "routing_rules.yaml").read_text()
    with pytest.raises(RulesInvalid, match="unknown time zone 'Mars/Olympus'"):
        parse(text.replace("America/New_York", "Mars/Olympus", 1))
    with pytest.raises(RulesInvalid, match="unknown placeholder"):
        parse(text.replace("You are number {position} in line.", "You are number {place} in line."))



def test_every_error_of_a_rules_file_is_named_in_one_message_with_the_files_name_only():
    text = (PROJECT_ROOT / "routing_rules.yaml").read_text()
    broken = text.replace("timeout_seconds: 6", "timeout_seconds: -1").replace("max_attempts: 3 ", "max_attempts: x ")
    with pytest.raises(RulesInvalid) as err:
        parse(broken, "/srv/hotline/routing_rules.yaml")
    assert str(err.value) == (
        "routing_rules.yaml: line 22: menu.timeout_seconds: Input should be greater than or equal to 2; line 23: "
        "menu.max_attempts: Input should be a valid integer, unable to parse string as an integer")



def test_a_rules_file_that_cannot_be_read_or_is_wrong_is_named_by_its_own_name(tmp_path):
    from ivr.core.rules import load

    with pytest.raises(RulesInvalid) as missing:
        load(tmp_path / "hotline-rules.yaml")
    assert str(missing.value) == "hotline-rules.yaml: cannot read the file: No such file or directory"
    wrong = tmp_path / "hotline-rules.yaml"
    wrong.write_text((PROJECT_ROOT / "routing_rules.yaml").read_text().replace("timeout_seconds: 6",
                                                                               "timeout_seconds: 1"))
    with pytest.raises(RulesInvalid, match="^hotline-rules.yaml: line 22: menu.timeout_seconds"):
        load(wrong)


@pytest.mark.parametrize("text, said", [
    ("menu:\n  options: [1,\n", "line 3: not valid YAML: expected the node content, but found '<stream end>'"),
    ("- 1\n- 2\n", "line 1: the file must be a mapping of settings"),
    ("x" * 200_001, "the document is longer than 200,000 characters"),
])
def test_a_problem_of_the_whole_file_says_what_it_knows_and_nothing_in_its_place(text, said):
    """No "(top)" or "file" standing in for a field or line the problem does not have."""
    with pytest.raises(RulesInvalid) as err:
        parse(text, "routing_rules.yaml")
    assert str(err.value) == f"routing_rules.yaml: {said}"


@pytest.mark.parametrize("open_, close, at, is_open", [
    ("08:00", "20:00", "08:00", True), ("08:00", "20:00", "19:59", True), ("08:00", "20:00", "20:00", False),
    ("22:00", "06:00", "22:00", True), ("22:00", "06:00", "23:30", True), ("22:00", "06:00", "05:59", True),
    ("22:00", "06:00", "06:00", False), ("22:00", "06:00", "12:00", False), ("21:59", "22:00", "21:59", True),
    ("09:00", "09:00", "03:00", True),  # opening and closing at the same time: open all day
])
def test_a_queue_is_open_from_its_opening_minute_until_just_before_closing_overnight_too(open_, close, at, is_open):
    import datetime as dt

    from ivr.core.rules import Hours

    hours = Hours(timezone="UTC", open=dt.time.fromisoformat(open_), close=dt.time.fromisoformat(close))
    now = dt.datetime.combine(dt.date(2026, 12, 2), dt.time.fromisoformat(at), dt.timezone.utc)
    assert hours.is_open(now) is is_open

# -- the edges of the rules: where a callback keeps its place, thresholds, what the decision records --------
def test_a_callback_keeps_the_place_of_a_live_only_rule_and_a_rules_own_priority():
    rules = _rules_with("""routing:
  - name: message mode callbacks
    when: {mode: message}
    then: {action: callback, priority: 25}
  - name: fraud, while agents are on
    when: {mode: live, menu: [fraud]}
    then: {action: enqueue, queue: fraud}
  - name: everyone
    then: {action: enqueue, queue: general}
""")
    # In live mode this caller would be in fraud: their callback is booked there, at the rule's priority.
    d = decide(rules, situation(mode="message", menu="fraud"))
    assert (d.action, d.queue, d.priority, d.rule) == ("callback", "fraud", 25, "message mode callbacks")


def test_a_voicemail_rule_keeps_the_place_the_caller_would_have_had_with_its_priority():
    rules = _rules_with("""routing:
  - name: message mode voicemail
    when: {mode: message}
    then: {action: voicemail}
  - name: affected
    when: {affected: true}
    then: {action: enqueue, queue: general, priority: 15}
  - name: everyone
    then: {action: enqueue, queue: general}
""")
    assert (decide(rules, situation(mode="message", affected=True)).queue,
            decide(rules, situation(mode="message", affected=True)).priority) == ("general", 15)
    assert decide(rules, situation(mode="message")).priority == 10


def test_with_no_queue_to_keep_a_callback_has_none_and_a_dial_rule_keeps_its_number():
    rules = _rules_with("""routing:
  - name: message mode callbacks
    when: {mode: message}
    then: {action: callback}
  - name: everyone, to the switchboard
    then: {action: dial, number: "+15555550199"}
""")
    d = decide(rules, situation(mode="message"))
    assert (d.action, d.queue, d.priority) == ("callback", None, None)
    dial = decide(rules, situation())
    assert (dial.action, dial.number, dial.rule) == ("dial", "+15555550199", "everyone, to the switchboard")
    assert dial.describe() == "dial +15555550199 by rule 'everyone, to the switchboard'"


@pytest.mark.parametrize("stats, matched", [(QueueStats(50, 0), True), (QueueStats(49, 0), False),
                                            (QueueStats(0, 10 * 60), True), (QueueStats(0, 10 * 60 - 1), False)])
def test_queue_size_and_wait_conditions_hold_from_their_threshold_on(stats, matched):
    rules = _rules_with("""routing:
  - name: long wait for general
    when: {queue: general, longest_wait_at_least_minutes: 10}
    then: {action: callback}
  - name: big general
    when: {queue: general, queue_size_at_least: 50}
    then: {action: callback}
  - name: everyone
    then: {action: enqueue, queue: general}
""")
    assert (decide(rules, situation(queues={"general": stats})).action == "callback") == matched


def test_an_enqueue_in_message_mode_gets_the_queues_overflow_and_says_why():
    rules = _rules_with("""routing:
  - name: everyone
    then: {action: enqueue, queue: general}
""")
    d = decide(rules, situation(mode="message"))
    assert (d.action, d.overflow) == ("voicemail", "message-mode")
    assert d.describe() == "voicemail [overflow: message-mode of general] by rule 'everyone'"


def test_with_no_active_incident_no_severity_rule_applies_not_even_the_lowest():
    from ivr.core.rules import Route, Then, When

    rules = RULES.model_copy(update={"routing": [
        Route(name="Any incident", when=When(severity_at_least="low"), then=Then(action="voicemail")),
        Route(name="Everyone", then=Then(action="enqueue", queue="general"))]})
    assert decide(rules, situation(severity="low")).rule == "Any incident"
    assert decide(rules, situation(severity="")).rule == "Everyone"  # no incident: its severity is empty
    assert decide(rules, situation(severity="unheard-of")).rule == "Everyone"  # not one the rules name


def test_reference_lengths_out_of_order_are_refused_at_their_line_and_a_fixed_length_is_accepted():
    shipped = (PROJECT_ROOT / "routing_rules.yaml").read_text()
    line = next(n for n, text in enumerate(shipped.splitlines(), 1) if text.strip().startswith("min_digits:"))
    with pytest.raises(RulesInvalid) as refused:
        parse(shipped.replace("min_digits: 6 ", "min_digits: 17"))
    assert str(refused.value) == (f"routing_rules.yaml: line {line}: verification.min_digits: min_digits 17 is "
                                  "more than max_digits 16")
    fixed = parse(shipped.replace("min_digits: 6 ", "min_digits: 16"))  # every reference 16 digits long
    assert (fixed.verification.min_digits, fixed.verification.max_digits) == (16, 16)
