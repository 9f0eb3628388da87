"""What a call step asks the shell to do besides answering: one small value per effect.

The flow stays pure by returning these in `Reply.effects`; webhooks/twilio_view.py carries them out:
spooled, never written to the database in the caller's path (a callback too: the spool writer stores it,
so a callback promised while the database is down is kept). The staff lines' effects (Audit, EnqueueJob) are written before the
answer, so staff never hear of something that did not happen.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# The kinds of background job a step can ask for; ivr/worker/handlers.py has a handler for each (a test checks).
SMS_JOB = "sms"
PHONE_RECORDING_JOB = "phone_recording"
RECORDING_DELETE_JOB = "recording_delete"


@dataclass(frozen=True)
class CallStarted:
    """Who called and what the hotline was doing then (rides on the call's first event)."""

    caller_hash: str | None
    caller_masked: str | None
    language: str
    mode: str
    incident_id: int | None


@dataclass(frozen=True)
class EnterQueue:
    queue: str
    priority: int
    language: str
    reason: str
    severity: str
    affected: bool
    verified: bool = False  # proved it with the reference on their notice (affected alone: a caller ID)


@dataclass(frozen=True)
class LeaveQueue:
    status: str
    wait_s: int | None = None
    agent: str | None = None  # who took the caller, when an agent did
    dequeued_by: str | None = None  # the CallSid of the agent-line call Twilio is connecting them to


@dataclass(frozen=True)
class SendSms:
    """Text the caller the notice link and this reference, from a job after the call has moved on."""

    lang: str
    reference: str


@dataclass(frozen=True)
class BookCallback:
    queue: str
    priority: int
    reason: str
    keep_place: bool = False
    voicemail_url: str | None = None
    # The key of the reference the caller proved in this call (Position.ref), "" if none: the callback is
    # then kept under the reference (one per reference, whichever phone asks), not under the caller's number.
    reference: str = ""


@dataclass(frozen=True)
class Audit:
    """A line of the audit log: who did what to what, and why."""

    actor: str
    action: str
    subject: str
    to_value: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class EnqueueJob:
    """Background work (ivr/worker/) queued in the same transaction as the step's audit lines; not run
    before `after_s` seconds from now."""

    kind: str
    payload: dict
    dedupe_key: str
    after_s: int = 0


# A RecordingUrl as Twilio hands it to a <Record> action: .../2010-04-01/Accounts/AC.../Recordings/RE..., maybe
# with the media's extension (https://www.twilio.com/docs/voice/twiml/record#attributes-action-parameters).
_TWILIO_RECORDING = re.compile(r"/Accounts/(AC[0-9a-f]{32})/Recordings/(RE[0-9a-f]{32})(?:\.[a-z0-9]{3,4})?$")


def recording_sids(url: str | None) -> tuple[str, str] | None:
    """(account SID, recording SID) of a recording Twilio made for us, from its RecordingUrl; None for
    anything else."""
    found = _TWILIO_RECORDING.search(url.partition("?")[0]) if url else None
    return (found[1], found[2]) if found else None


def delete_recording(url: str | None, actor: str, why: str, after_s: int = 0) -> EnqueueJob | None:
    """The job that deletes a recording at Twilio once the hotline is done with it (or `after_s` seconds
    from now): Twilio keeps every recording until it is deleted, so dropping our link alone would leave a
    caller's voice there for good. None when the URL is not one of Twilio's recordings (nothing to delete).
    One job per recording: asking again brings it forward (ivr/store/jobs.py `enqueue`)."""
    sids = recording_sids(url)
    if sids is None:
        return None
    account, sid = sids
    return EnqueueJob(RECORDING_DELETE_JOB, {"account_sid": account, "recording_sid": sid, "actor": actor,
                                             "why": why}, f"{RECORDING_DELETE_JOB}:{sid}", after_s)
