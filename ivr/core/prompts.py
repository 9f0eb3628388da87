"""The prompts every language of routing_rules.yaml must have, their placeholders, and which language each
sentence of them is in (one prompt, one language: a sentence in another language is its own prompt)."""
from __future__ import annotations

import re

# Every language must have every one of these prompts: a caller in any language hears every step.
REQUIRED_PROMPTS = (
    "greeting",
    "menu",
    "menu_short",
    "invalid_choice",
    "no_input",
    "too_many_attempts",
    "goodbye",
    "agents_unavailable",
    "connecting_agent",
    "hold",
    "queue_failed",
    "language_offer",
    "language_set",
    "no_announcement",
    "details_missing",
    "advice_missing",
    "technical_difficulty",
    "queue_position",
    "queue_estimate",
    "queue_estimate_one",
    "queue_no_estimate",
    "callback_offer",
    "callback_offer_later",
    "callback_confirmed",
    "callback_refreshed",
    "callback_unavailable",
    "voicemail_prompt",
    "voicemail_thanks",
    "queue_closed",
    "sms_sent",
    "sms_reference",
    "sms_repeat_hint",
    "sms_unavailable",
    "sms_body",
    "callback_unreachable_sms",
)
# Placeholders a prompt may use, filled in when it is spoken.
PLACEHOLDERS = {"queue_position": {"position"}, "queue_estimate": {"minutes"}, "sms_sent": {"reference"},
                "sms_reference": {"reference"}, "sms_body": {"url", "reference"}, "language_offer": {"key"},
                "callback_unreachable_sms": {"url"}}
KEYS = "0123456789*#"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_PLACEHOLDER = re.compile(r"\\\{[a-z_]+\\\}")


def sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text or "")) if s]


class SentenceLanguages:
    """Which languages' prompts hold a sentence, as the rules say (placeholders match any value)."""

    def __init__(self, prompts_by_language: dict[str, dict[str, str]]):
        self.prompts = prompts_by_language
        self._exact: dict[str, set[str]] = {}
        self._patterns: list[tuple[re.Pattern, set[str]]] = []
        for code, prompts in prompts_by_language.items():
            for text in prompts.values():
                for sentence in sentences(text):
                    if "{" in sentence:
                        pattern = re.compile(_PLACEHOLDER.sub(".+?", re.escape(sentence)) + "$")
                        self._patterns.append((pattern, {code}))
                    else:
                        self._exact.setdefault(sentence, set()).add(code)

    def of(self, sentence: str) -> set[str]:
        """The languages of a spoken sentence; empty when it is not from the prompts (an announcement)."""
        found = set(self._exact.get(sentence, ()))
        for pattern, codes in self._patterns:
            if pattern.match(sentence):
                found |= codes
        return found
