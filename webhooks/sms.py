"""Twilio's text-message webhooks for notice campaigns: delivery reports and replies (STOP, START, HELP).

Signed like every Twilio route (403 unsigned); a signed request always gets 200 and TwiML. Nothing is
written here: each report or reply is spooled and the spool writer applies it (ivr/store/notice_sends.py),
as a caller's call records are.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from ivr.core import notices
from ivr.core.phone_numbers import callable_number
from ivr.store.affected import hasher
from webhooks.params import twilio_params
from webhooks.security import is_signed_by_twilio

log = logging.getLogger("webhooks.sms")
bp = Blueprint("sms", __name__, url_prefix="/sms")
EMPTY = str(MessagingResponse())


def _signed() -> Response | None:
    hotline = current_app.extensions["ivr"]
    req = request._get_current_object()
    req.max_content_length = hotline.config.max_body_bytes
    if hotline.config.validate_signatures and not is_signed_by_twilio(req, hotline.validator,
                                                                      hotline.config.public_url):
        log.warning("refused unsigned or forged request to %s from %s", req.path, req.remote_addr)
        return Response("Forbidden: not signed by Twilio\n", status=403, mimetype="text/plain")
    return None


def _twiml(body: str = EMPTY) -> Response:
    return Response(body, status=200, mimetype="text/xml")


@bp.route("/status", methods=["POST", "GET"])
def status():
    """A notice's delivery report (the StatusCallback the sender gave: ?r=<recipient>). Parameters:
    MessageSid, MessageStatus, ErrorCode
    (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status)."""
    refused = _signed()
    if refused is not None:
        return refused
    try:
        p = twilio_params(request)
        recipient = (p.arg("r") or "")[:20]
        if recipient.isdigit():
            current_app.extensions["ivr"].recorder.record(
                "notice_status", recipient=int(recipient), sid=(p.get("MessageSid") or p.get("SmsSid") or "")[:64],
                status=(p.get("MessageStatus") or p.get("SmsStatus") or "")[:20],
                error_code=(p.get("ErrorCode") or "")[:10] or None)
    except Exception:
        log.exception("could not spool a delivery report")
    return _twiml()


@bp.route("/inbound", methods=["POST", "GET"])  # a number's webhook may be set to GET
def inbound():
    """A text to our number (its Messaging webhook): STOP and its kind take the number out of every
    campaign, START puts it back (both kept by hash across campaigns), HELP says where to call. Twilio
    itself answers STOP and START on long codes, so those get an empty reply (no second message)."""
    refused = _signed()
    if refused is not None:
        return refused
    hotline = current_app.extensions["ivr"]
    try:
        p = twilio_params(request)
        kind = notices.reply_kind(p.get("Body"))
        number = callable_number(p.get("From"))
        if kind in (notices.OPT_OUT, notices.OPT_IN) and number:
            hotline.recorder.record("notice_reply", kind=kind,
                                    number_hash=hasher(hotline.config.secret_key)(number).hex())
        if kind == notices.HELP:
            reply = MessagingResponse()
            reply.message(help_text(hotline.config))
            return _twiml(str(reply))
    except Exception:
        log.exception("could not handle a text to our number")
    return _twiml()


def help_text(cfg) -> str:
    parts = ["Breach notice help:"]
    if cfg.hotline_number:
        parts.append(f"call {cfg.hotline_number}.")
    if cfg.notice_url:
        parts.append(f"Details: {cfg.notice_url}.")
    parts.append("Reply STOP to receive no more notices.")
    return " ".join(parts)
