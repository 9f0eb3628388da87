"""Which language a spoken sentence is in, by the rules' prompts (ivr/core/prompts.py): what `ivr simulate`
checks every sentence a caller hears against ("a sentence of the es prompts in an en voice") and what the
rules check refuses another language's offer with."""
from __future__ import annotations

from ivr.core.prompts import SentenceLanguages, sentences


def test_sentences_are_split_at_their_ends_and_nothing_is_no_sentence():
    assert sentences("Hello.  Press 1! Why? ok") == ["Hello.", "Press 1!", "Why?", "ok"]
    assert sentences("") == sentences(None) == sentences("   ") == []


def test_a_sentence_is_in_every_language_whose_prompts_hold_it_word_for_word_or_by_placeholder():
    table = SentenceLanguages({
        "en": {"greeting": "Welcome. Press 1 now.", "sms_sent": "Your reference is {reference}."},
        "es": {"greeting": "Bienvenido. Press {key} now.", "hold": "Your reference is {reference}."},
        "fr": {"greeting": "Bienvenue. Press {key} now."},
    })
    assert table.of("Welcome.") == {"en"}
    assert table.of("Press 1 now.") == {"en", "es", "fr"}  # word for word in one, by placeholder in two
    assert table.of("Press 5 now.") == {"es", "fr"}
    assert table.of("Your reference is 123456.") == {"en", "es"}
    assert table.of("Your reference is .") == set()  # a placeholder stands for something
    assert table.of("An announcement nobody wrote into the prompts.") == set()


def test_a_placeholder_matches_only_its_own_sentence_not_more():
    table = SentenceLanguages({"en": {"queue_position": "You are number {position} in line."}})
    assert table.of("You are number 3 in line.") == {"en"}
    assert table.of("You are number 3 in line. Thank you.") == set()
    assert table.of("Now you are number 3 in line.") == set()
