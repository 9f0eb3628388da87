"""Every key path through the hotline (`ivr simulate --all-paths`): dead ends, endless loops, prompts that are
empty or in the wrong voice. Walks an app in-process (a Flask test client) with the rules it runs."""
from __future__ import annotations

from dataclasses import dataclass

from ivr.core.prompts import SentenceLanguages, sentences
from ivr.tools.simulate.call import SimulatedCall
from ivr.tools.simulate.report import CallResult
from ivr.tools.simulate.transport import FlaskTransport


def keys_for_language(rules, lang: str | None) -> list[str]:
    """The key presses that switch a call to `lang` through the menu (none for the default language)."""
    if not lang or lang == rules.default_language:
        return []
    if lang not in rules.languages:
        raise ValueError(f"{lang!r} is not one of the languages: {', '.join(rules.languages)}")
    menu_key = next((k for k, action in rules.menu.options.items() if action == "language"), None)
    if menu_key is None:
        raise ValueError("the menu has no language option")
    # With two languages the menu's language key switches at once; with more it opens the language menu.
    return [menu_key] if len(rules.languages) == 2 else [menu_key, rules.languages[lang].key]


@dataclass(frozen=True)
class PathProblem:
    mode: str
    lang: str
    keys: tuple[str, ...]
    problem: str

    def __str__(self) -> str:
        keys = " ".join(k or "(silence)" for k in self.keys) or "(nothing)"
        return f"[{self.mode}/{self.lang}] keys {keys}: {self.problem}"


def explore(app, auth_token: str, rules, depth: int = 3, modes=("message", "live")) -> tuple[int, list[PathProblem]]:
    """Walk every key path to `depth` (each menu key, a wrong key, silence) in every mode and language.

    After its keys the caller stays silent, so every path must end: with a goodbye (Hangup), in a queue, or
    recording a voicemail. Reports dead ends (the call drops without a goodbye), endless loops (no end within
    the step limit), HTTP errors, and prompts that are empty or in the wrong language.
    """
    import itertools

    hotline = app.extensions["ivr"]
    wrong = next(k for k in "5683*#" if k not in rules.menu.options)
    alphabet = sorted(rules.menu.options) + [wrong, ""]
    limit = depth + 4 + 3 * rules.menu.max_attempts + 4
    problems: list[PathProblem] = []
    walked = 0
    for mode in modes:
        hotline.state.mode_override = mode
        for lang in rules.languages:
            prefix = keys_for_language(rules, lang)
            for seq in itertools.product(alphabet, repeat=depth):
                call = SimulatedCall(FlaskTransport(app), auth_token, keys=prefix + list(seq), max_requests=limit)
                result = call.run()
                walked += 1
                problem = _path_problem(result, rules)
                if problem:
                    problems.append(PathProblem(mode, lang, tuple(seq), problem))
    hotline.state.mode_override = None
    return walked, problems


def _path_problem(result: CallResult, rules) -> str | None:
    if result.ended.startswith("http-"):
        return f"Twilio would play an application error ({result.ended})"
    if result.ended == "step-limit":
        return "endless loop: the call did not end while the caller stayed silent"
    if result.ended == "end-of-document" and not any(h.kind == "record" or h.kind == "silence" and "records" in h.text
                                                      for h in result.heard[-2:]):
        return "dead end: the call drops without a goodbye"
    codes: dict[str, set[str]] = {}
    for code, lang in rules.languages.items():
        codes.setdefault(lang.say_language, set()).add(code)
    sentence_languages = _sentence_languages(rules)
    for heard in result.heard:
        if heard.kind == "say" and (not heard.text or heard.lang not in codes):
            return f"prompt missing or in an unknown language: {heard.text[:60]!r} ({heard.lang})"
        if heard.kind == "say":
            for sentence in sentences(heard.text):
                written_in = sentence_languages.of(sentence)
                if written_in and not written_in & codes[heard.lang]:
                    return (f"a sentence of the {'/'.join(sorted(written_in))} prompts in a {heard.lang} voice: "
                            f"{sentence[:60]!r}")
    return None


_languages_of_rules: list[SentenceLanguages] = []


def _sentence_languages(rules) -> SentenceLanguages:
    """Which language each prompt sentence is in, by the rules (built once for the rules in use)."""
    if not _languages_of_rules or _languages_of_rules[0].prompts is not rules.prompts:
        _languages_of_rules[:] = [SentenceLanguages(rules.prompts)]
    return _languages_of_rules[0]
