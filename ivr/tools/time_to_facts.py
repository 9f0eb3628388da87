"""Time to facts: how long after answer a caller in each language hears the end of the announcement in
their own language, measured from real media durations.

The caller listens; as soon as they hear their language offered ("Para español, oprima 3", matched by the
rules' language_offer prompt, not by guessing) they press the key it names, as a caller would; otherwise
they let everything play. Audio lasts as long as its WAV file (fetched the way Twilio fetches it); a <Say>
lasts as long as the offline TTS engine (espeak-ng) takes to say it, made phone-ready like any prompt.
Twilio's own voices differ a little; this is the measure we have offline, and the same for every language.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

from ivr.media import audio, tts
from ivr.tools.simulate import SimulatedCall, Transport

TARGET_S = 45.0


@dataclass
class Timing:
    lang: str
    seconds: float | None  # None: the announcement in this language was never heard
    heard: list[tuple[float, str]] = field(default_factory=list)  # (seconds, what) in order

    def __str__(self) -> str:
        if self.seconds is None:
            return f"{self.lang}: the announcement in this language is never heard"
        verdict = "ok" if self.seconds <= TARGET_S else f"over the {TARGET_S:g} s target"
        return f"{self.lang}: {self.seconds:.1f} s to the end of the announcement ({verdict})"


class Durations:
    """How long each thing a caller hears lasts (cached: the same prompt is measured once)."""

    def __init__(self, transport: Transport, base: str):
        self.transport, self.base, self._cache = transport, base, {}

    def say(self, text: str, lang: str) -> float:
        key = ("say", text, lang)
        if key not in self._cache:
            speech = tts.synthesize(text, lang, engines=("espeak",))
            self._cache[key] = audio.make_phone_ready(audio.decode(speech.data)).duration_ms / 1000
        return self._cache[key]

    def play(self, url: str) -> float:
        if url not in self._cache:
            absolute = urljoin(self.base + "/", url)
            status, _ctype, body = self.transport.get(absolute[len(self.base):])
            self._cache[url] = len(audio.load_phone_wav(body)) / 1000 if status == 200 else 0.0
        return self._cache[url]


def measure(transport: Transport, token: str, rules, lang: str, facts, durations: Durations | None = None,
            max_requests: int = 6) -> Timing:
    """The time for a caller in `lang`; `facts(verb)` says whether a <Say>/<Play> is the announcement."""
    call = SimulatedCall(transport, token, max_requests=max_requests)
    durations = durations or Durations(transport, call.base)
    codes = {language.say_language: code for code, language in rules.languages.items()}
    offer = re.compile(re.escape(rules.prompt(lang, "language_offer")).replace(r"\{key\}", r"(\S)") + "$")
    timing, clock = Timing(lang, None), 0.0
    url, extra = "/voice/incoming", None
    for _ in range(max_requests):
        status, _ctype, body = call.request(url, extra)
        if status != 200:
            return timing
        nxt = None
        for verb in ET.fromstring(body):
            prompts = list(verb) if verb.tag == "Gather" else [verb]
            pressed = None
            for prompt in prompts:
                seconds = _length(prompt, durations, codes)
                clock += seconds
                timing.heard.append((round(seconds, 2), f"{prompt.tag} {(prompt.text or '').strip()[:60]}"))
                if facts(prompt) and _in(prompt, lang, codes):
                    timing.seconds = round(clock, 2)
                    return timing
                found = offer.match((prompt.text or "").strip()) if prompt.tag == "Say" else None
                if found and codes.get(prompt.get("language")) == lang:
                    pressed = found.group(1)  # they heard their language: they press at once
                    break
            if verb.tag == "Gather":
                if pressed:
                    nxt = (verb.get("action"), {"Digits": pressed})
                    break
                clock += int(verb.get("timeout", "5"))  # nobody pressed: Twilio waits, then goes on
            elif verb.tag == "Redirect":
                nxt = ((verb.text or "").strip(), None)
                break
            elif verb.tag in ("Hangup", "Enqueue", "Record"):
                return timing
        if nxt is None:
            return timing
        url, extra = nxt
    return timing


def _length(verb: ET.Element, durations: Durations, codes: dict) -> float:
    if verb.tag == "Say":
        return durations.say((verb.text or "").strip(), codes.get(verb.get("language"), "en"))
    if verb.tag == "Play":
        return durations.play((verb.text or "").strip()) * int(verb.get("loop", "1"))
    if verb.tag == "Pause":
        return float(verb.get("length", "1"))
    return 0.0


def _in(verb: ET.Element, lang: str, codes: dict) -> bool:
    return verb.tag == "Play" or codes.get(verb.get("language")) == lang


def announcement_matcher(snapshot, lang: str):
    """facts(verb) for the published main announcement in `lang`: its audio, or its text."""
    spoken = snapshot.content.spoken.get(f"{lang}/main")
    if spoken is None:
        return lambda verb: False
    return lambda verb: ((verb.tag == "Play" and bool(spoken.media) and spoken.media in (verb.text or ""))
                         or (verb.tag == "Say" and (verb.text or "").strip() == (spoken.text or "").strip()))
