"""A simulated call: Twilio's part, placing a call on the app and following the TwiML verb by verb.

Requests are signed as Twilio signs them and carry the parameters Twilio sends. The hold loop after an
`<Enqueue>` is followed in hold.py.
"""
from __future__ import annotations

import re
import secrets
import xml.etree.ElementTree as ET
from urllib.parse import urljoin

from twilio.request_validator import RequestValidator

from ivr.tools.simulate import hold
from ivr.tools.simulate.hold import QUEUE_SID, HoldPlan
from ivr.tools.simulate.report import CallResult, Heard, pressed
from ivr.tools.simulate.transport import HttpTransport, Transport


class TwilioQueues:
    """Twilio's side of <Enqueue> and <Dial><Queue>: the simulated callers waiting in each queue, in order.

    Share one between calls so an agent's <Dial><Queue> reaches a caller who was enqueued.
    """

    def __init__(self):
        self.waiting: dict[str, list["SimulatedCall"]] = {}

    def join(self, queue: str, call: "SimulatedCall") -> None:
        self.waiting.setdefault(queue, []).append(call)

    def position(self, queue: str, call: "SimulatedCall") -> tuple[int, int]:
        line = self.waiting.get(queue) or []
        return (line.index(call) + 1 if call in line else len(line) + 1), max(len(line), 1)

    def remove(self, queue: str, call: "SimulatedCall") -> None:
        if call in self.waiting.get(queue, []):
            self.waiting[queue].remove(call)

    def front(self, queue: str) -> "SimulatedCall | None":
        line = self.waiting.get(queue) or []
        return line.pop(0) if line else None


class SimulatedCall:
    """One call from `caller` to `to`, pressing `keys` in order whenever the hotline gathers input ("" in
    `keys`: silent at that prompt).

    `hold`: how long to stay in the hold loop after an <Enqueue> and what to press there (default: one pass
    of the waitUrl, pressing nothing). `lang_by_ear`: before its keys, the caller presses the key offered in
    that language's own voice, as a caller would (for a server whose rules we do not have).
    `answer`: the DialCallStatus of a number this call dials (completed: they answered; busy, no-answer,
    failed). `queues`: the Twilio queues shared with other simulated calls.
    """

    def __init__(self, transport: Transport, auth_token: str, *, keys=(), caller="+12025550123",
                 to="+12025550100", public_url: str | None = None, max_requests: int = 60, fetch_media=False,
                 recording_url: str | None = None, recording_seconds: int = 12, answer: str = "completed",
                 queues: TwilioQueues | None = None, hold: HoldPlan | None = None, lang_by_ear: str | None = None):
        self.transport = transport
        self.answer = answer
        self.queues = queues
        self.hold_plan = hold or HoldPlan()
        self.lang_by_ear = lang_by_ear
        self.enqueue_action: str | None = None
        # Relative URLs resolve against the document being run, and a <Gather> or <Record> without an action
        # posts back to it (twilio.com/docs/voice/twiml/gather, .../record).
        self.document_url = ""
        self.queue_name = ""
        self.validator = RequestValidator(auth_token)
        self.keys = list(keys)
        self.base = (public_url or transport.base).rstrip("/")
        self.max_requests = max_requests
        self.fetch_media = fetch_media
        self.recording = (recording_url, recording_seconds)  # what a <Record> "records"
        self._media_seconds: dict[str, float] = {}
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
        absolute = urljoin(self.document_url or self.base + "/", url)
        params = {**self.params, **(extra or {})}
        signature = self.validator.compute_signature(absolute, params)
        self.result.requests.append((absolute, params))
        return self.transport.post(self._path(absolute), params, {"X-Twilio-Signature": signature})

    def _path(self, absolute: str) -> str:
        path = absolute[len(self.base):] if absolute.startswith(self.base) else absolute
        return self.transport.base + path if isinstance(self.transport, HttpTransport) else path

    def requests_left(self) -> int:
        return self.max_requests - len(self.result.requests)

    def run(self, incoming: str = "/voice/incoming") -> CallResult:
        url, extra = incoming, None
        while self.requests_left() > 0:
            status, ctype, body = self.request(url, extra)
            self.params["CallStatus"] = "in-progress"
            if status != 200 or ctype not in ("text/xml", "application/xml"):
                self.result.ended = f"http-{status}"
                self.result.heard.append(Heard("error", f"HTTP {status} {ctype}: Twilio would play an error"))
                return self._finish()
            doc = ET.fromstring(body)
            self.result.documents.append(doc)
            self.document_url = self.result.requests[-1][0]
            nxt = self._follow(doc)
            if nxt is None:
                return self._finish()
            url, extra = nxt
        self.result.ended = self.result.ended or "step-limit"
        return self._finish()

    def _follow(self, doc: ET.Element):
        """Run one TwiML document; return the next (url, params) Twilio would request, or None if the call ends."""
        for verb in doc:
            tag = verb.tag
            if tag == "Gather":
                for prompt in verb:
                    self.hear(prompt)
                key, why = self._next_key(verb)
                if key:  # "" in the keys: the caller stays silent at this prompt
                    self.result.heard.append(pressed(key, why))
                    digits = {"Digits": key, "FinishedOnKey": "", "msg": "Gather End"}
                    return verb.get("action") or self.document_url, digits
                self.result.heard.append(Heard("silence", "presses nothing"))
            elif tag in ("Say", "Play", "Pause"):
                self.hear(verb)
            elif tag == "Redirect":
                return (verb.text or "").strip(), None
            elif tag == "Record":
                url, seconds = self.recording
                if url is None:
                    self.result.heard.append(Heard("silence", "records nothing"))
                    continue
                self.result.heard.append(Heard("record", f"records {seconds} s"))
                recorded = {"RecordingUrl": url, "RecordingDuration": str(seconds),
                            "RecordingSid": "RE" + secrets.token_hex(16), "Digits": "#"}
                return verb.get("action") or self.document_url, recorded
            elif tag == "Enqueue":
                nxt = self._enqueue(verb)
                if nxt != "go on":
                    return nxt
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

    def _next_key(self, gather: ET.Element) -> tuple[str, str]:
        """The key the caller presses at this Gather: their language's offer first (by ear), then their keys."""
        if self.lang_by_ear:
            key = offered_key(gather, self.lang_by_ear)
            if key is not None:
                self.lang_by_ear = None  # in that language now, or about to be
                if key:
                    return key, "(the offer heard in that language's own voice)"
        return (self.keys.pop(0) if self.keys else ""), ""

    def hear(self, verb: ET.Element) -> None:
        """The caller hears a <Say>, <Play> or <Pause>."""
        if verb.tag == "Say":
            self.result.heard.append(Heard("say", (verb.text or "").strip(), verb.get("language", "")))
        elif verb.tag == "Play":
            url = (verb.text or "").strip()
            note = ""
            if self.fetch_media and self._ours(url):
                status, ctype, body = self.transport.get(self._relative(url))
                note = f"HTTP {status}, {ctype}, {len(body)} bytes"
            self.result.heard.append(Heard("play", note, url=url))
        elif verb.tag == "Pause":
            self.result.heard.append(Heard("pause", f"{verb.get('length', '1')} s"))

    def _ours(self, url: str) -> bool:
        return not url.startswith(("http://", "https://")) or url.startswith(self.base)

    def _relative(self, url: str) -> str:
        return urljoin(self.base + "/", url)[len(self.base):]

    def media_seconds(self, url: str) -> float:
        """How long an audio file the call plays lasts (fetched once; 0 if it is not ours or not a WAV)."""
        if url not in self._media_seconds:
            seconds = 0.0
            if self._ours(url):
                status, _ctype, body = self.transport.get(self._relative(url))
                seconds = hold.wav_seconds(body) if status == 200 else 0.0
            self._media_seconds[url] = seconds
        return self._media_seconds[url]

    def queue_position(self, queue: str) -> tuple[int, int]:
        """(QueuePosition, CurrentQueueSize) as Twilio would send them; alone in the queue without shared queues."""
        return self.queues.position(queue, self) if self.queues is not None else (1, 1)

    def _enqueue(self, verb: ET.Element):
        """<Enqueue> (twilio.com/docs/voice/twiml/enqueue): the hold loop, then what ended it."""
        self.queue_name = (verb.text or "").strip()
        self.enqueue_action = verb.get("action")
        if self.queues is not None:
            self.queues.join(self.queue_name, self)
        outcome = hold.wait_in_queue(self, verb, self.hold_plan)
        if outcome == "waiting":
            self.result.ended = "queued"
            return None
        if self.queues is not None:
            self.queues.remove(self.queue_name, self)
        if outcome == "error":
            return None
        params = {"QueueResult": outcome, "QueueSid": QUEUE_SID, "QueueTime": str(int(self.result.hold_seconds))}
        if self.enqueue_action:
            self.result.heard.append(Heard("queue", f"Twilio requests the Enqueue action: QueueResult={outcome}"))
        if outcome == "hangup":
            if self.enqueue_action:
                self.request(self.enqueue_action, params)
            self.result.ended = "hangup"
            return None
        # <Leave>: the action is requested at once; without one the call goes on after the <Enqueue>
        # (twilio.com/docs/voice/twiml/leave).
        return (self.enqueue_action, params) if self.enqueue_action else "go on"

    def hang_up_on_hold(self) -> CallResult:
        """A caller still waiting in the queue hangs up (the Enqueue action, then the final status callback)."""
        if self.result.ended == "queued":
            if self.queues is not None:
                self.queues.remove(self.queue_name, self)
            hold.abandoned(self, self.enqueue_action)
            self.hang_up()
        return self.result

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
        queue_params = {"QueueSid": QUEUE_SID, "QueueTime": "60", "DequeingCallSid": dequeuing_sid}
        if url:
            self._hear_document(url, queue_params)
        self.result.heard.append(Heard("connected", "talks with an agent"))
        if self.enqueue_action:  # after the bridged call, Twilio requests the Enqueue action
            self.request(self.enqueue_action, {"QueueResult": "bridged", "QueueTime": "60",
                                               "QueueSid": queue_params["QueueSid"]})
        self.result.ended = "bridged"
        self._finish()

    def _hear_document(self, url: str, params: dict) -> None:
        """Request a document that may only speak (a <Queue url>: Play, Say, Pause, Redirect) and hear it."""
        status, _ctype, body = self.request(url, params)
        if status == 200:
            doc = ET.fromstring(body)
            self.result.documents.append(doc)
            for child in doc:
                self.hear(child)

    def _finish(self) -> CallResult:
        if self.result.ended != "queued":  # a queued caller is still on the line: see hang_up_on_hold()
            self.hang_up()
        return self.result

    def hang_up(self) -> None:
        """The call ends: Twilio's final status callback (for a queued caller, whenever the test says)."""
        duration = str(max(len(self.result.heard) * 5, 1))
        self.request("/voice/status", {"CallStatus": "completed", "CallDuration": duration,
                                       "CallbackSource": "call-progress-events", "SequenceNumber": "0"})


def offered_key(gather: ET.Element, lang: str) -> str | None:
    """The key a caller who wants `lang` presses at this Gather, by ear: "" if the prompts are already in
    that language, the digit a prompt in that language's own voice offers, or None if it is not offered
    here. (A language offers itself in its own voice: "Para español, oprima 3".)"""
    says = [p for p in gather if p.tag == "Say"]

    def in_lang(say: ET.Element) -> bool:
        return (say.get("language") or "").split("-")[0].lower() == lang.lower()

    if says and in_lang(says[0]):
        return ""
    for say in says:
        digits = re.findall(r"(?<![\d])[0-9](?![\d])", say.text or "")
        if in_lang(say) and len(digits) == 1:
            return digits[0]
    return None
