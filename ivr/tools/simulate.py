"""A simulated caller: places a call on the app the way Twilio does and follows the TwiML verb by verb.

Requests are signed as Twilio signs them and carry the parameters Twilio sends. Ops use it to dry-run the
hotline before go-live (`ivr simulate`); the tests use it to follow calls.
"""
from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

from twilio.request_validator import RequestValidator

from ivr.core.prompts import SentenceLanguages, sentences


@dataclass
class Heard:
    """One thing that happened on the call, in order."""

    kind: str  # say, play, pause, press, silence, enqueue, hold, hangup, end, error
    text: str = ""
    lang: str = ""
    url: str = ""

    def __str__(self) -> str:
        if self.kind == "say":
            return f"  hears ({self.lang}): {self.text}"
        if self.kind == "play":
            return f"  hears audio: {self.url}" + (f" ({self.text})" if self.text else "")
        if self.kind == "press":
            return f"  presses {self.text}"
        return f"  [{self.kind}] {self.text or self.url}".rstrip()


@dataclass
class CallResult:
    call_sid: str
    heard: list[Heard] = field(default_factory=list)
    requests: list[tuple[str, dict]] = field(default_factory=list)
    documents: list[ET.Element] = field(default_factory=list)
    ended: str = ""  # how the call ended: hangup, end-of-document, queued, step-limit, http-<status>
    dialled: list[tuple[str, str]] = field(default_factory=list)  # (number, caller ID) of each <Dial><Number>

    def said(self) -> list[str]:
        return [h.text for h in self.heard if h.kind == "say"]

    def transcript(self) -> str:
        return "\n".join(str(h) for h in self.heard) + f"\n  => call ended: {self.ended}"


class Transport:
    """How requests reach the app: in-process (a Flask test client) or over HTTP."""

    base = "http://localhost"

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def get(self, url: str) -> tuple[int, str, bytes]:
        raise NotImplementedError


class FlaskTransport(Transport):
    def __init__(self, app):
        self.client = app.test_client()

    def post(self, url, params, headers):
        resp = self.client.post(url, data=params, headers=headers)
        return resp.status_code, resp.mimetype or "", resp.get_data()

    def get(self, url):
        resp = self.client.get(url)
        data = resp.get_data()
        resp.close()
        return resp.status_code, resp.mimetype or "", data


class HttpTransport(Transport):
    def __init__(self, base: str, timeout: float = 15.0):
        import requests

        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout

    def post(self, url, params, headers):
        import requests

        try:
            resp = self.session.post(url, data=params, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:  # what Twilio would see as a failed request
            return 599, "", str(exc).encode()
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content

    def get(self, path):
        resp = self.session.get(self.base + path, timeout=self.timeout)
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content


class TwilioQueues:
    """Twilio's side of <Enqueue> and <Dial><Queue>: the simulated callers waiting in each queue, in order.

    Share one between calls so an agent's <Dial><Queue> reaches a caller who was enqueued.
    """

    def __init__(self):
        self.waiting: dict[str, list["SimulatedCall"]] = {}

    def join(self, queue: str, call: "SimulatedCall") -> None:
        self.waiting.setdefault(queue, []).append(call)

    def front(self, queue: str) -> "SimulatedCall | None":
        line = self.waiting.get(queue) or []
        return line.pop(0) if line else None


class SimulatedCall:
    """One call from `caller` to `to`, pressing `keys` in order whenever the hotline gathers input.

    `answer`: the DialCallStatus of a number this call dials (completed: they answered; busy, no-answer,
    failed). `queues`: the Twilio queues shared with other simulated calls.
    """

    def __init__(self, transport: Transport, auth_token: str, *, keys=(), caller="+12025550123",
                 to="+12025550100", public_url: str | None = None, max_requests: int = 60, fetch_media=False,
                 recording_url: str | None = None, recording_seconds: int = 12, answer: str = "completed",
                 queues: TwilioQueues | None = None):
        self.transport = transport
        self.answer = answer
        self.queues = queues
        self.enqueue_action: str | None = None
        self.validator = RequestValidator(auth_token)
        self.keys = list(keys)
        self.base = (public_url or transport.base).rstrip("/")
        self.max_requests = max_requests
        self.fetch_media = fetch_media
        self.recording = (recording_url, recording_seconds)  # what a <Record> "records"
        self.params = {
            "CallSid": "CA" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": caller,
            "To": to,
            "Caller": caller,
            "Called": to,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "CallStatus": "ringing",
        }
        self.result = CallResult(self.params["CallSid"])

    def request(self, url: str, extra: dict | None = None) -> tuple[int, str, bytes]:
        """POST a signed, Twilio-shaped request to `url` (absolute, or relative to the current document)."""
        absolute = urljoin(self.base + "/", url)
        params = {**self.params, **(extra or {})}
        signature = self.validator.compute_signature(absolute, params)
        self.result.requests.append((absolute, params))
        path = absolute[len(self.base):] if absolute.startswith(self.base) else absolute
        if isinstance(self.transport, HttpTransport):
            path = self.transport.base + path
        return self.transport.post(path, params, {"X-Twilio-Signature": signature})

    def run(self, incoming: str = "/voice/incoming") -> CallResult:
        url, extra = incoming, None
        for _ in range(self.max_requests):
            status, ctype, body = self.request(url, extra)
            self.params["CallStatus"] = "in-progress"
            if status != 200 or ctype not in ("text/xml", "application/xml"):
                self.result.ended = f"http-{status}"
                self.result.heard.append(Heard("error", f"HTTP {status} {ctype}: Twilio would play an error"))
                return self._finish()
            doc = ET.fromstring(body)
            self.result.documents.append(doc)
            nxt = self._follow(doc)
            if nxt is None:
                return self._finish()
            url, extra = nxt
        self.result.ended = "step-limit"
        return self._finish()

    def _follow(self, doc: ET.Element):
        """Run one TwiML document; return the next (url, params) Twilio would request, or None if the call ends."""
        for verb in doc:
            tag = verb.tag
            if tag == "Gather":
                for prompt in verb:
                    self._prompt(prompt)
                key = self.keys.pop(0) if self.keys else ""
                if key:  # "" in the keys: the caller stays silent at this prompt
                    self.result.heard.append(Heard("press", key))
                    return verb.get("action", ""), {"Digits": key, "FinishedOnKey": "", "msg": "Gather End"}
                self.result.heard.append(Heard("silence", "presses nothing"))
            elif tag in ("Say", "Play", "Pause"):
                self._prompt(verb)
            elif tag == "Redirect":
                return (verb.text or "").strip(), None
            elif tag == "Record":
                url, seconds = self.recording
                if url is None:
                    self.result.heard.append(Heard("silence", "records nothing"))
                    continue
                self.result.heard.append(Heard("record", f"records {seconds} s"))
                return verb.get("action", ""), {"RecordingUrl": url, "RecordingDuration": str(seconds),
                                                "RecordingSid": "RE" + secrets.token_hex(16), "Digits": "#"}
            elif tag == "Enqueue":
                return self._enqueue(verb)
            elif tag == "Dial":
                nxt = self._dial(verb)
                if nxt is not None:
                    return nxt
            elif tag == "Hangup":
                self.result.ended = "hangup"
                self.result.heard.append(Heard("hangup"))
                return None
            else:
                self.result.heard.append(Heard("error", f"unexpected verb <{tag}>"))
        self.result.ended = self.result.ended or "end-of-document"
        return None

    def _prompt(self, verb: ET.Element) -> None:
        if verb.tag == "Say":
            self.result.heard.append(Heard("say", (verb.text or "").strip(), verb.get("language", "")))
        elif verb.tag == "Play":
            url = (verb.text or "").strip()
            note = ""
            if self.fetch_media and (not url.startswith(("http://", "https://")) or url.startswith(self.base)):
                status, ctype, body = self.transport.get(urljoin(self.base + "/", url)[len(self.base):])
                note = f"HTTP {status}, {ctype}, {len(body)} bytes"
            self.result.heard.append(Heard("play", note, url=url))
        elif verb.tag == "Pause":
            self.result.heard.append(Heard("pause", f"{verb.get('length', '1')} s"))

    def _enqueue(self, verb: ET.Element):
        queue = (verb.text or "").strip()
        self.result.heard.append(Heard("enqueue", f"waits in queue {queue}"))
        self.enqueue_action = verb.get("action")
        if self.queues is not None:
            self.queues.join(queue, self)
        wait_url = verb.get("waitUrl")
        if wait_url:
            extra = {"QueuePosition": "1", "QueueSid": "QU" + "0" * 32, "QueueTime": "0", "AvgQueueTime": "0",
                     "CurrentQueueSize": "1", "MaxQueueSize": "100"}
            self._hear_document(wait_url, extra)
        self.result.ended = "queued"
        return None

    def _hear_document(self, url: str, params: dict) -> None:
        """Request a document that may only speak (a waitUrl pass, a <Queue url>) and hear its prompts."""
        status, _ctype, body = self.request(url, params)
        if status == 200:
            doc = ET.fromstring(body)
            self.result.documents.append(doc)
            for child in doc:
                if child.tag in ("Say", "Play", "Pause"):
                    self._prompt(child)

    def _dial(self, verb: ET.Element):
        """<Dial> (twilio.com/docs/voice/twiml/dial): the action gets DialCallStatus; without an action the
        call goes on with the next verb (None here)."""
        action = verb.get("action")
        queue = verb.find("Queue")
        if queue is not None:
            status, other = self._dial_queue(queue)
        else:
            number = verb.find("Number")
            target = ((number.text if number is not None else verb.text) or "").strip()
            self.result.dialled.append((target, verb.get("callerId", "")))
            self.result.heard.append(Heard("dial", f"dials {target}: {self.answer}"))
            status, other = self.answer, "CA" + secrets.token_hex(16)
        if not action:
            return None
        answered = status in ("completed", "answered")
        return action, {"DialCallStatus": status, "DialCallSid": other, "DialCallDuration": "60" if answered else "0"}

    def _dial_queue(self, queue: ET.Element) -> tuple[str, str]:
        """Connect this call (an agent) to the front caller of a queue. Twilio runs the <Queue url> document
        on the QUEUED CALLER's leg, "executed on the queued caller's end before the two parties are
        connected" (twilio.com/docs/voice/twiml/queue): the caller hears it, this call does not."""
        name = (queue.text or "").strip()
        caller = self.queues.front(name) if self.queues is not None else None
        if caller is None:  # Twilio waits for a caller until the Dial's timeout: nobody came
            self.result.heard.append(Heard("dial", f"dials queue {name}: nobody there"))
            return "no-answer", ""
        self.result.heard.append(Heard("dial", f"connected to the caller from queue {name}"))
        caller.connected(queue.get("url"), self.params["CallSid"])
        return "completed", caller.params["CallSid"]

    def connected(self, url: str | None, dequeuing_sid: str) -> None:
        """This queued caller is dequeued by an agent: run the <Queue url> document here, talk, hang up."""
        queue_params = {"QueueSid": "QU" + "0" * 32, "QueueTime": "60", "DequeingCallSid": dequeuing_sid}
        if url:
            self._hear_document(url, queue_params)
        self.result.heard.append(Heard("connected", "talks with an agent"))
        if self.enqueue_action:  # after the bridged call, Twilio requests the Enqueue action
            self.request(self.enqueue_action, {"QueueResult": "bridged", "QueueTime": "60",
                                               "QueueSid": queue_params["QueueSid"]})
        self.result.ended = "bridged"
        self._finish()

    def _finish(self) -> CallResult:
        if self.result.ended != "queued":  # a queued caller is still on the line: see hang_up()
            self.hang_up()
        return self.result

    def hang_up(self) -> None:
        """The call ends: Twilio's final status callback (for a queued caller, whenever the test says)."""
        duration = str(max(len(self.result.heard) * 5, 1))
        self.request("/voice/status", {"CallStatus": "completed", "CallDuration": duration,
                                       "CallbackSource": "call-progress-events", "SequenceNumber": "0"})


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
