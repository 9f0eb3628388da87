"""The hold loop, as Twilio runs it for a caller waiting after `<Enqueue>`.

From Twilio's pages (twilio.com/docs/voice/twiml/enqueue, twilio.com/docs/voice/twiml/leave):
- the waitUrl document may hold only `<Play> <Say> <Pause> <Gather> <Redirect> <Leave> <Hangup>`; when it
  runs out Twilio requests the waitUrl again, with `QueuePosition`, `QueueSid`, `QueueTime`, `AvgQueueTime`,
  `CurrentQueueSize`, `MaxQueueSize`: that is the hold loop, and it goes on until the caller is dequeued,
  leaves or hangs up;
- a `<Gather>` there works as anywhere (a key stops the prompt; its action, or else the current URL, gets
  `Digits`); the document it answers with is still a wait document;
- `<Leave>` takes the caller out of the queue: the Enqueue's action is requested at once with
  `QueueResult=leave`, or without an action the call goes on with the verb after the `<Enqueue>`.

A real caller waits until something happens; a simulated one waits a bounded number of passes or seconds.
Time is estimated, not measured: speech at 150 words a minute, audio by the length of its WAV file, pauses
and Gather timeouts as written.
"""
from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ivr.tools.simulate.report import Heard, pressed

WAIT_VERBS = {"Play", "Say", "Pause", "Gather", "Redirect", "Leave", "Hangup"}
WORDS_PER_SECOND = 2.5  # 150 words a minute: about what Twilio's voices speak
QUEUE_SID = "QU" + "0" * 32


@dataclass
class HoldPlan:
    """How long the simulated caller stays on hold, and what they press while waiting.

    `passes`: how many times at most Twilio requests the waitUrl; `seconds`: stop once this much (estimated)
    time has passed in the queue; `keys`: pressed at the hold loop's Gathers in order, "" stays silent at one.
    """

    passes: int = 1
    seconds: float | None = None
    keys: list[str] = field(default_factory=list)


def wait_in_queue(call, enqueue: ET.Element, plan: HoldPlan) -> str:
    """Follow the hold loop of `enqueue` for `call` (a SimulatedCall). Returns what ended the wait: "leave"
    (a <Leave>), "hangup" (a <Hangup>), "error" (a wait document Twilio could not use) or "waiting" (the
    plan ran out and the caller is still in the queue)."""
    result = call.result
    queue = (enqueue.text or "").strip()
    result.heard.append(Heard("enqueue", f"waits in queue {queue}"))
    wait_url = enqueue.get("waitUrl")
    if not wait_url:
        result.heard.append(Heard("hold", "Twilio's default hold music (no waitUrl)"))
        return "waiting"
    keys = list(plan.keys)
    while result.hold_passes < plan.passes and (plan.seconds is None or result.hold_seconds < plan.seconds):
        if call.requests_left() <= 0:
            break
        result.hold_passes += 1
        position, size = call.queue_position(queue)
        alone = "" if call.queues is not None else ": no other simulated caller"
        result.heard.append(Heard("hold", f"pass {result.hold_passes}: Twilio requests the waitUrl (QueuePosition "
                                          f"{position} of {size}{alone}; about {result.hold_seconds:.0f} s in "
                                          f"the queue)"))
        url, extra = wait_url, {"QueuePosition": str(position), "QueueSid": QUEUE_SID,
                                "QueueTime": str(int(result.hold_seconds)), "AvgQueueTime": "0",
                                "CurrentQueueSize": str(size), "MaxQueueSize": "100"}
        while url is not None:  # one pass: the waitUrl document, then any Redirect or Gather action it leads to
            if call.requests_left() <= 0:
                return "waiting"
            status, ctype, body = call.request(url, extra)
            if status != 200 or ctype not in ("text/xml", "application/xml"):
                result.ended = f"http-{status}"
                result.heard.append(Heard("error", f"HTTP {status} {ctype} on hold: Twilio would play an error"))
                return "error"
            doc = ET.fromstring(body)
            result.documents.append(doc)
            call.document_url = result.requests[-1][0]
            url, extra, outcome = _run_wait_document(call, doc, call.document_url, keys)
            if outcome:
                return outcome
        # The document ran out: Twilio requests the waitUrl again (the next pass).
    return "waiting"


def _run_wait_document(call, doc: ET.Element, current_url: str, keys: list[str]):
    """Run one wait document: (next url, its params, None), or (None, None, "leave"/"hangup"), or (None, None,
    None) when it runs out."""
    result = call.result
    for verb in doc:
        tag = verb.tag
        if tag not in WAIT_VERBS:
            result.heard.append(Heard("error", f"<{tag}> is not allowed on hold: Twilio skips it"))
        elif tag in ("Say", "Play", "Pause"):
            _hear(call, verb)
        elif tag == "Gather":
            key = keys.pop(0) if keys else ""
            prompts = list(verb)
            # A caller who means to press waits for the offer, then presses during the music that follows it.
            last_say = max((i for i, p in enumerate(prompts) if p.tag == "Say"), default=len(prompts) - 1)
            for prompt in prompts[: last_say + 1] if key else prompts:
                _hear(call, prompt)
            if key:
                result.heard.append(pressed(key, "on hold"))
                return verb.get("action") or current_url, {"Digits": key, "FinishedOnKey": "",
                                                           "msg": "Gather End"}, None
            result.heard.append(Heard("silence", "presses nothing"))
            result.hold_seconds += int(verb.get("timeout", "5"))
        elif tag == "Redirect":
            return (verb.text or "").strip(), None, None
        elif tag == "Leave":
            result.heard.append(Heard("leave", "leaves the queue"))
            return None, None, "leave"
        elif tag == "Hangup":
            result.heard.append(Heard("hangup", "the hotline hangs up on hold"))
            return None, None, "hangup"
    return None, None, None


def _hear(call, verb: ET.Element) -> None:
    call.hear(verb)
    call.result.hold_seconds += estimated_seconds(call, verb)


def estimated_seconds(call, verb: ET.Element) -> float:
    if verb.tag == "Say":
        return len((verb.text or "").split()) / WORDS_PER_SECOND
    if verb.tag == "Pause":
        return float(verb.get("length", "1"))
    if verb.tag == "Play":
        return call.media_seconds((verb.text or "").strip()) * max(1, int(verb.get("loop", "1") or 1))
    return 0.0


def wav_seconds(body: bytes) -> float:
    """The length of a WAV file from its header (the fmt chunk's byte rate, the data chunk's size); 0 if
    it is not a WAV file."""
    if len(body) < 12 or body[:4] != b"RIFF" or body[8:12] != b"WAVE":
        return 0.0
    offset, byte_rate = 12, 0
    while offset + 8 <= len(body):
        chunk, size = body[offset:offset + 4], struct.unpack("<I", body[offset + 4:offset + 8])[0]
        if chunk == b"fmt " and size >= 12:
            byte_rate = struct.unpack("<I", body[offset + 16:offset + 20])[0]
        elif chunk == b"data":
            return min(size, len(body) - offset - 8) / byte_rate if byte_rate else 0.0
        offset += 8 + size + (size & 1)
    return 0.0


def abandoned(call, action: str | None) -> None:
    """The waiting caller hangs up: Twilio requests the Enqueue action with QueueResult=hangup ("the caller
    hung up while in the queue", twilio.com/docs/voice/twiml/enqueue); its answer is not played."""
    call.result.heard.append(Heard("hangup", f"hangs up on hold after {call.result.hold_passes} pass(es), "
                                             f"about {call.result.hold_seconds:.0f} s in the queue"))
    if action:
        call.result.heard.append(Heard("queue", "Twilio requests the Enqueue action: QueueResult=hangup"))
        call.request(action, {"QueueResult": "hangup", "QueueSid": QUEUE_SID,
                              "QueueTime": str(int(call.result.hold_seconds))})
    call.result.ended = "hangup"
