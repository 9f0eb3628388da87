"""The go-live check's time to facts, pure: how long a new caller listens before the main statement in their
language, following the call flow as a caller would (every word from the first, their key pressed as soon as
it is offered in their language). The figure `ivr preflight` and the dashboard show (ivr/ops/caller_view.py)."""
from __future__ import annotations

from callers import with_french
from ivr.core import go_live
from test_caller_now import SHIPPED, snapshot

GREETING = "Thank you for calling the security incident line."
SNAP = snapshot(en_main=("Cards were taken.", None, 3, "tts", 300.0),
                es_main=("Se robaron tarjetas.", None, 2, "tts", 200.0),
                fr_main=("Cartes volées.", None, 1, "tts", 100.0))


def listened(rules, lang: str):
    """(seconds to the statement, what the caller heard in order): a phrase lasts a sixteenth of a second per
    character, so every phrase counts for a different time."""
    heard = []

    def seconds_of(verb) -> float:
        heard.append(verb.text)
        return len(verb.text) / 16

    return go_live.time_to_facts(rules, SNAP, lang, seconds_of), heard


def seconds(*phrases: str) -> float:
    return sum(len(p) for p in phrases) / 16


def test_each_language_listens_up_to_its_statement_and_no_further():
    # English: the greeting, the Spanish offer, the statement: (49 + 23 + 17) / 16 = 5.5625 s, said as 5.6.
    assert listened(SHIPPED, "en") == (5.6, [GREETING, "Para español, oprima 3.", "Cards were taken."])
    assert seconds(GREETING, "Para español, oprima 3.", "Cards were taken.") == 5.5625
    # Spanish: presses 3 at the Spanish offer and hears the Spanish statement at once: 92 / 16 = 5.75 s.
    assert listened(SHIPPED, "es") == (5.8, [GREETING, "Para español, oprima 3.", "Se robaron tarjetas."])


def test_with_three_languages_a_caller_goes_through_the_language_menu():
    rules = with_french(SHIPPED)
    en_time, en_heard = listened(rules, "en")
    assert en_heard == [GREETING, "Para español, oprima 3.", "Pour le français, appuyez sur 3.", "Cards were taken."]
    assert en_time == round(seconds(*en_heard), 1) == 7.6  # 7.625 s
    # Spanish: 3 at the greeting's offer, then 2 in the language menu, then the confirmation and the statement.
    es_time, es_heard = listened(rules, "es")
    assert es_heard == [GREETING, "Para español, oprima 3.", "For English, press 1.", "Para español, oprima 2.",
                        "Escuchará esta línea en español.", "Se robaron tarjetas."]
    assert es_time == round(seconds(*es_heard), 1) == 10.5
    fr_time, fr_heard = listened(rules, "fr")
    assert fr_heard[2:6] == ["Pour le français, appuyez sur 3.", "For English, press 1.", "Para español, oprima 2.",
                             "Pour le français, appuyez sur 5."]
    assert fr_heard[-1] == "Cartes volées." and fr_time == round(seconds(*fr_heard), 1) == 14.3


def test_a_language_no_key_switches_to_never_hears_its_statement():
    """A menu with no language key (the rules accept one): English callers hear their statement at once, and
    the check says Spanish callers never hear theirs, after the English greeting, statement and menu."""
    options = {k: action for k, action in SHIPPED.menu.options.items() if action != "language"}
    rules = SHIPPED.model_copy(update={"menu": SHIPPED.menu.model_copy(update={"options": options})})
    assert listened(rules, "en") == (round(seconds(GREETING, "Cards were taken."), 1),
                                     [GREETING, "Cards were taken."])
    never, heard = listened(rules, "es")
    assert never is None and heard[:2] == [GREETING, "Cards were taken."] and heard[2].startswith("To hear what")
