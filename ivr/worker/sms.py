"""The SMS follow-up ("press 4"): sent through Twilio's REST API by a background job, never in a webhook.

Retries on network errors, rate limits and Twilio's server errors; a refused number fails at once. Once
the job is over, the number is scrubbed from its payload: the result keeps only the masked number.

One text per request, even when a runner dies mid-send. Twilio's Messages API takes no idempotency key
(https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource), so the job records
the attempt before the REST call and the message SID after it (ivr/worker/jobs.py RunningJob.record). A
later attempt that finds a SID finishes without sending. One that finds an attempt but no SID (the runner
died before the answer came, or the answer was lost) does not resend blindly: it reads the messages sent to
that number from our number (the list resource's To/From filters, same page) and adopts one with this
text created since the attempt; only when Twilio shows none was nothing sent, and it sends.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ivr.store.models import utcnow
from ivr.worker.jobs import PermanentError

TEXTS = ("sms_body", "callback_unreachable_sms")  # the press-4 notice; a callback closed as unreachable


def rest_client(cfg) -> Client:
    """Twilio's REST API (messages, calls), or the stand-in at IVR_TWILIO_API_URL."""
    client = Client(cfg.twilio_account_sid, cfg.twilio_auth_token, http_client=TwilioHttpClient(timeout=10))
    if cfg.twilio_api_url:  # a stand-in for api.twilio.com (tests, staging)
        client.api.base_url = cfg.twilio_api_url
    return client


def masked(number: str) -> str:
    return "***" + number[-4:] if len(number) >= 4 else "***"


CLOCK_SKEW = timedelta(minutes=2)  # between our clock and Twilio's date_created, when matching an attempt


def send_sms(hotline, payload: dict, job=None) -> dict:
    """Text the caller once (see the module's docstring); `job` is the RunningJob (None: no record kept)."""
    cfg = hotline.config
    if not (cfg.twilio_account_sid and cfg.sms_from):
        raise PermanentError("SMS is not configured: set TWILIO_ACCOUNT_SID and TWILIO_SMS_FROM")
    rules = hotline.rules.rules
    prompt = payload.get("prompt", "sms_body")
    if prompt not in TEXTS:
        raise PermanentError(f"no SMS text called {prompt!r}")
    body = rules.prompt(rules.language(payload.get("lang")), prompt).format(
        url=cfg.notice_url or "", reference=payload["reference"])
    client = rest_client(cfg)
    earlier = (job.progress if job else {}).get("sms") or {}
    if earlier.get("sid"):  # sent by an attempt cut short before it could finish the job
        return _sent(payload, earlier["sid"], earlier.get("status", "sent"))
    if earlier.get("sending_at"):
        found = _sent_since(client, payload["to"], cfg.sms_from, body, datetime.fromisoformat(earlier["sending_at"]))
        if found is not None:
            job.record({"sms": {**earlier, "sid": found.sid, "status": found.status, "adopted": True}})
            return _sent(payload, found.sid, found.status)
    attempt = {"sending_at": utcnow().isoformat()}
    if job:
        job.record({"sms": attempt})  # raises LeaseLost if another runner took this job over: send nothing
    try:
        message = client.messages.create(to=payload["to"], from_=cfg.sms_from, body=body)
    except TwilioRestException as exc:
        if exc.status == 429 or exc.status >= 500:
            raise  # worth another try
        raise PermanentError(f"Twilio refused the message: {exc.status} {exc.code} {exc.msg}") from None
    if job:
        job.record({"sms": {**attempt, "sid": message.sid, "status": message.status}})
    return _sent(payload, message.sid, message.status)


def _sent_since(client, to: str, from_: str, body: str, since: datetime):
    """The message with this text Twilio created to `to` from `from_` since `since`, if any (newest first).

    Read with the list resource's To and From filters
    (https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources); a trial
    account prefixes the body, hence "in". A failed read raises: the job tries again later, sending nothing."""
    for message in client.messages.list(to=to, from_=from_, limit=50):
        created = message.date_created
        if message.body and body in message.body and (created is None or created >= since - CLOCK_SKEW):
            return message
    return None


def _sent(payload: dict, sid: str, status: str) -> dict:
    return {"sid": sid, "status": status, "to": masked(payload["to"]), "reference": payload["reference"]}


def scrub(payload: dict) -> dict:
    """Once the text is sent (or never will be), keep only the masked number."""
    return {**payload, "to": masked(payload.get("to", ""))}

