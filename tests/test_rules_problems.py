"""Every problem the rules check can find, word for word, with its line and field: what `ivr rules check`,
the console's rules page and the reload's audit entry show staff (ivr/core/rules.py). Each case changes the
shipped routing_rules.yaml in one place and expects exactly the problems that change makes."""
from __future__ import annotations

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core.rules import RulesInvalid, parse

SHIPPED = (PROJECT_ROOT / "routing_rules.yaml").read_text()
ROUTING = SHIPPED[SHIPPED.index("routing:\n"):SHIPPED.index("\nhold:")]


def _problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(RulesInvalid) as refused:
        parse(text)
    return [(e.line, e.field, e.message) for e in refused.value.errors]


def _changed(old: str, new: str) -> str:
    assert SHIPPED.count(old) >= 1, old
    return SHIPPED.replace(old, new, 1)


def _line(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def _with_routing(routing: str) -> str:
    return SHIPPED.replace(ROUTING, "routing:\n" + routing)


def test_the_shipped_rules_have_no_problem():
    assert parse(SHIPPED).default_language == "en"


# -- languages and their prompts ---------------------------------------------------------------------------
def test_a_default_language_that_is_not_configured():
    text = _changed("default_language: en", "default_language: fr")
    assert _problems(text) == [(_line(text, "default_language"), "default_language",
                                "'fr' is not one of the languages")]


def test_two_languages_on_one_key():
    text = _changed('key: "2"', 'key: "1"')
    assert _problems(text) == [(_line(text, 'key: "1"\n    say_language: es-US'), "languages.es.key",
                                "key '1' is already used by 'en'")]


def test_a_language_key_that_is_not_one_phone_key():
    text = _changed('key: "2"', 'key: "22"')
    assert _problems(text) == [(_line(text, 'key: "22"'), "languages.es.key", "must be one phone key: 0-9, * or #")]


def test_a_prompt_missing_in_one_language():
    text = _changed('    hold: "Gracias por esperar.', '    hold_music: "Gracias por esperar.')
    assert _problems(text) == [
        (_line(text, "  es:\n    greeting"), "prompts.es", "the 'es' prompt 'hold' is missing"),
        (_line(text, "hold_music"), "prompts.es.hold_music", "unknown prompt 'hold_music' (a typo?)"),
    ]


def test_an_empty_prompt_is_a_missing_one():
    text = _changed('    hold: "Gracias por esperar. Una persona de nuestro equipo lo atenderá lo antes posible."',
                    '    hold: "  "')
    assert _problems(text) == [(_line(text, "  es:\n    greeting"), "prompts.es", "the 'es' prompt 'hold' is missing")]


@pytest.mark.parametrize("old, new, name, allowed", [
    ("You are number {position} in line.", "You are number {place} in line.", "queue_position", "{position}"),
    ("Your reference: {reference}.", "Your reference: {ref}.", "sms_body", "{reference}, {url}"),
    ("Thank you for calling the security incident line.", "Thank you for calling, {name}.", "greeting", "none"),
    ("You are number {position} in line.", "You are number {position in line.", "queue_position", "{position}"),
])
def test_a_placeholder_the_prompt_cannot_fill(old, new, name, allowed):
    text = _changed(old, new)
    assert _problems(text) == [(_line(text, new), f"prompts.en.{name}",
                                f"prompt {name!r} uses an unknown placeholder (allowed: {allowed})")]


def test_prompts_for_a_language_that_is_not_configured():
    text = _changed("\n  es:\n    greeting:", "\n  fr:\n    greeting: Bonjour.\n  es:\n    greeting:")
    assert _problems(text) == [(_line(text, "  fr:"), "prompts.fr", "prompts for 'fr', which is not one of the "
                                                                    "languages")]


def test_another_languages_offer_inside_a_prompt():
    text = _changed('greeting: "Thank you for calling the security incident line."',
                    'greeting: "Thank you for calling the security incident line. Para español, oprima 2."')
    assert _problems(text) == [(_line(text, "Para español, oprima 2."), "prompts.en.greeting",
                                "'Para español, oprima 2.' is another language's offer: each language offers "
                                "itself, in its own voice (language_offer)")]


# -- the menu and the queues -------------------------------------------------------------------------------
def test_a_menu_key_that_is_not_one_phone_key():
    text = _changed('"8": verify ', '"10": verify')
    assert _problems(text) == [(_line(text, "  options:"), "menu.options",
                                "menu key '10' must be one phone key: 0-9, * or #")]


def test_a_menu_without_a_repeat_option():
    text = _changed('    "9": repeat\n', "")
    assert _problems(text) == [(_line(text, "  options:"), "menu.options", "the menu needs a 'repeat' option: "
                                "callers must be able to hear the message again")]


def test_an_unknown_time_zone():
    text = _changed("timezone: America/New_York", "timezone: Mars/Olympus")
    assert _problems(text) == [(_line(text, "Mars/Olympus"), "queues.affected.hours.timezone",
                                "unknown time zone 'Mars/Olympus' (use a name like America/New_York)")]


def test_overflow_to_a_phone_number_without_the_number():
    text = _changed("    overflow: voicemail", "    overflow: dial")
    assert _problems(text) == [(_line(text, "overflow: dial"), "queues.general.overflow",
                                "overflow 'dial' needs an overflow_number")]


# -- routing -----------------------------------------------------------------------------------------------
EVERYONE = "  - name: everyone\n    then: {action: enqueue, queue: general}\n"


@pytest.mark.parametrize("rule, field, message", [
    ("when: {queue: nowhere, queue_open: false}\n    then: {action: goodbye}", "when.queue",
     "unknown queue 'nowhere' (queues: fraud, affected, general)"),
    ("when: {affected: true}\n    then: {action: enqueue, queue: nowhere}", "then.queue",
     "unknown queue 'nowhere' (queues: fraud, affected, general)"),
    ("when: {severity_at_least: apocalyptic}\n    then: {action: goodbye}", "when.severity_at_least",
     "unknown severity 'apocalyptic' (severities: low, medium, high, critical)"),
    ("when: {queue_open: false}\n    then: {action: goodbye}", "when",
     "queue conditions need 'queue:' to say which queue"),
    ("when: {queue_size_at_least: 10}\n    then: {action: goodbye}", "when",
     "queue conditions need 'queue:' to say which queue"),
    ("when: {longest_wait_at_least_minutes: 10}\n    then: {action: goodbye}", "when",
     "queue conditions need 'queue:' to say which queue"),
    ("when: {affected: true}\n    then: {action: enqueue}", "then", "action 'enqueue' needs a queue"),
    ("when: {affected: true}\n    then: {action: message}", "then", "action 'message' needs a prompt"),
    ("when: {affected: true}\n    then: {action: dial}", "then", "action 'dial' needs a number"),
])
def test_a_rule_missing_what_it_needs(rule, field, message):
    text = _with_routing(f"  - name: the rule\n    {rule}\n" + EVERYONE)
    assert _problems(text) == [(_line(text, "    " + rule.split("\n")[field.startswith("then")].strip()),
                                f"routing.0.{field}", message)]


def test_a_message_rule_whose_prompt_is_missing_in_every_language():
    text = _with_routing("  - name: the rule\n    when: {affected: true}\n    then: {action: message, prompt: "
                         "all_clear}\n" + EVERYONE)
    assert _problems(text) == [(_line(text, "  en:\n    greeting"), "prompts.en", "the 'en' prompt 'all_clear' is "
                                                                                 "missing"),
                               (_line(text, "  es:\n    greeting"), "prompts.es", "the 'es' prompt 'all_clear' is "
                                                                                 "missing")]


def test_a_rule_that_can_never_match_names_the_earlier_rule_that_takes_its_calls():
    text = _with_routing("  - name: affected\n    when: {affected: true}\n    then: {action: goodbye}\n"
                         "  - name: affected and severe\n    when: {affected: true, severity_at_least: high}\n"
                         "    then: {action: callback}\n" + EVERYONE)
    assert _problems(text) == [(_line(text, "  - name: affected and severe"), "routing.1",
                                "rule 'affected and severe' can never match: rule 1 ('affected') matches every "
                                "call it would")]


def test_only_the_first_earlier_rule_that_takes_its_calls_is_named():
    text = _with_routing("  - name: all\n    then: {action: goodbye}\n"
                         "  - name: all again\n    then: {action: goodbye}\n" + EVERYONE)
    assert _problems(text) == [
        (_line(text, "  - name: all again"), "routing.1", "rule 'all again' can never match: rule 1 ('all') "
                                                          "matches every call it would"),
        (_line(text, "  - name: everyone"), "routing.2", "rule 'everyone' can never match: rule 1 ('all') "
                                                         "matches every call it would"),
    ]


def test_the_last_rule_must_be_the_default():
    text = _with_routing("  - name: affected only\n    when: {affected: true}\n    then: {action: goodbye}\n")
    assert _problems(text) == [(_line(text, "  - name: affected only"), "routing.0",
                                "the last rule must have no conditions: it is the default for every other call")]


def test_every_problem_of_a_file_is_found_at_once_in_the_order_of_the_checks():
    text = _changed("default_language: en", "default_language: fr").replace('key: "2"', 'key: "1"', 1)
    assert [field for _, field, _ in _problems(text)] == ["default_language", "languages.es.key"]
