"""What callers hear, for the pure-flow tests (test_flow_*.py): the rules in the repository, a statement
published in English and Spanish, the prompts as each language's voice says them, and rules variants."""
from __future__ import annotations

from datetime import datetime, timezone

from helpers import heard
from ivr.config import PROJECT_ROOT
from ivr.core.rules import Language, Route, Then, load
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.core.verbs import Context

RULES = load(PROJECT_ROOT / "routing_rules.yaml")
VOICE = {"en": "en-US", "es": "es-US"}
CALL_SID = "CA" + "1" * 32
WEDNESDAY_NOON_NEW_YORK = datetime(2026, 12, 2, 17, 0, tzinfo=timezone.utc)  # every queue is open
SATURDAY_NOON_NEW_YORK = datetime(2026, 12, 5, 17, 0, tzinfo=timezone.utc)  # general is closed, affected open

BOTH = Content(version=4, incident_id=7, incident_title="Card data theft", severity="critical", spoken={
    "en/main": Spoken("We were breached.", "a" * 64, 2),
    "es/main": Spoken("Sufrimos una brecha.", None, 2),
    "en/advice": Spoken("Change your password.", None, 1),
    "es/advice": Spoken("Cambie su contraseña.", None, 1),
})
LIVE, MESSAGE = Snapshot("live", BOTH), Snapshot("message", BOTH)
NOTHING_PUBLISHED = Snapshot("live", Content())


def ctx(**kw) -> Context:
    return Context(now=kw.pop("now", WEDNESDAY_NOON_NEW_YORK), call_sid=CALL_SID, **kw)


def say(lang: str, name: str, rules=RULES, **values) -> tuple[str, str]:
    """A prompt as the caller hears it: (the Say language of `lang`'s voice, the text)."""
    text = rules.prompt(lang, name)
    return VOICE[lang], text.format(**values) if values else text


def full_menu(lang: str) -> list[tuple[str, str]]:
    """The full menu in `lang`, then the other language offering itself (key 3) in its own voice."""
    other = "es" if lang == "en" else "en"
    return [say(lang, "menu"), say(other, "language_offer", key="3")]


def hear(reply, rules=RULES) -> list[tuple[str, str]]:
    return heard(reply, rules)


def with_routing(*routes: Route, rules=RULES, **queue_changes):
    """The rules with these routing rules, and queue settings changed (queue name -> field changes)."""
    queues = {name: q.model_copy(update=queue_changes.get(name, {})) for name, q in rules.queues.items()}
    return rules.model_copy(update={"routing": list(routes) or rules.routing, "queues": queues})


def everyone(action: str, **then) -> Route:
    return Route(name="Everyone", then=Then(action=action, **then))


def with_french(rules=RULES):
    """A third language: the menu's language key opens a language menu instead of switching at once."""
    languages = {**rules.languages, "fr": Language(name="Français", key="5", say_language="fr-FR")}
    prompts = {**rules.prompts, "fr": {"language_offer": "Pour le français, appuyez sur {key}."}}
    return rules.model_copy(update={"languages": languages, "prompts": prompts})
