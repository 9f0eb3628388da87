"""The SMS follow-up ("press 4"): sent through Twilio's REST API by a background job, never in a webhook.

Retries on network errors, rate limits and Twilio's server errors; a refused number fails at once. Once
the job is over, the number is scrubbed from its payload: the result keeps only the masked number.
"""
from __future__ import annotations

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

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


def send_sms(hotline, payload: dict) -> dict:
    cfg = hotline.config
    if not (cfg.twilio_account_sid and cfg.sms_from):
        raise PermanentError("SMS is not configured: set TWILIO_ACCOUNT_SID and TWILIO_SMS_FROM")
    rules = hotline.rules.rules
    prompt = payload.get("prompt", "sms_body")
    if prompt not in TEXTS:
        raise PermanentError(f"no SMS text called {prompt!r}")
    body = rules.prompt(rules.language(payload.get("lang")), prompt).format(
        url=cfg.notice_url or "", reference=payload["reference"])
    try:
        message = rest_client(cfg).messages.create(to=payload["to"], from_=cfg.sms_from, body=body)
    except TwilioRestException as exc:
        if exc.status == 429 or exc.status >= 500:
            raise  # worth another try
        raise PermanentError(f"Twilio refused the message: {exc.status} {exc.code} {exc.msg}") from None
    return {"sid": message.sid, "status": message.status, "to": masked(payload["to"]),
            "reference": payload["reference"]}


def scrub(payload: dict) -> dict:
    """Once the text is sent (or never will be), keep only the masked number."""
    return {**payload, "to": masked(payload.get("to", ""))}

