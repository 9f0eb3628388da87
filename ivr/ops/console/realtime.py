"""What is happening right now, as the dashboard says it: the warnings an ops lead must not miss (live mode
with nobody to answer, a language or topic with nothing published), and waits as people say them."""
from __future__ import annotations

from ivr.store.models import TOPICS
from ivr.store.reads import Presence


def warnings(mode: str, people: Presence, missing: list[tuple[str, str]], language_names: dict) -> list[str]:
    """Plain sentences for the dashboard's banner, most urgent first."""
    out = []
    if mode == "live" and not people.available:
        others = [f"{len(names)} {label}" for names, label in ((people.on_call, "on a call"),
                                                               (people.wrap_up, "in wrap-up"),
                                                               (people.desk_only, "available on the desk only"))
                  if names]
        busy = f" ({', '.join(others)})" if others else ""
        out.append(f"Live mode is on but no agent is free on the agent line{busy}: callers who press 0 wait with "
                   "nobody to answer. Get agents to call the agent line, or switch to message mode.")
    by_lang: dict[str, list[str]] = {}
    for lang, topic in missing:
        by_lang.setdefault(lang, []).append(topic)
    for lang, topics in by_lang.items():
        name = language_names.get(lang, lang)
        if len(topics) == len(TOPICS):
            out.append(f"Nothing is published in {name}: those callers hear only the prompts.")
        else:
            out.append(f"Nothing is published in {name} for {' or '.join(topics)}: callers who ask for it hear "
                       "only the prompts.")
    return out


def wait_text(seconds: int) -> str:
    """A wait as people say it: 45 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
