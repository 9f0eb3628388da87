"""The admin phone line (POST /voice/admin): the HTTP shell around ivr/core/admin_line.py.

Each route reads Twilio's parameters and our own (the session key, language, topic), looks up what the
step needs (whose PIN this is), and writes the step's audit lines and jobs before answering.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from ivr.core import admin_line as steps
from ivr.store import pin_guard
from ivr.store.pin_guard import PinLimits
from ivr.store.users import admin_phone, is_active_admin, phone_admin_for_pin
from webhooks.twilio_view import _digits, _int, _values, staff_call, twilio_route, write_staff_effects

bp = Blueprint("admin_line", __name__, url_prefix="/voice")
voice_route = twilio_route(bp)
LINE = "admin-line"


def _signed_in(call) -> str | None:
    """The admin this URL signs in, while she is still an active admin: deactivating her ends the call."""
    name = call.signed_in(request.args.get("u", ""), request.args.get("k", ""))
    return name if name and is_active_admin(current_app.extensions["ivr"].db, name) else None


@voice_route("/admin")
def admin(hotline, rules, snap, pos):
    caller_hash, _ = hotline.caller_identity(_values().get("From"))
    return steps.start(locked=pin_guard.locked(hotline.db, "admin", caller_hash))


@voice_route("/admin/pin")
def admin_pin(hotline, rules, snap, pos):
    caller_hash, masked = hotline.caller_identity(_values().get("From"))
    if pin_guard.locked(hotline.db, "admin", caller_hash):
        return steps.start(locked=True)  # not even the right PIN is checked
    pin, cfg = _digits() or "", hotline.config
    found = phone_admin_for_pin(hotline.db, pin, caller_hash, cfg.admin_line_own_numbers) if pin.isdigit() else None
    if found:
        pin_guard.succeeded(hotline.db, "admin", caller_hash)
    locked = not found and pin_guard.failed(hotline.db, "admin", caller_hash, masked, PinLimits.from_config(cfg),
                                            registered=admin_phone(hotline.db, caller_hash))
    tries = _int(request.args.get("t"), 0, steps.MAX_PIN_TRIES)
    reply = steps.pin_entered(staff_call(hotline, LINE), rules, tries, found[1] if found else None, locked)
    return write_staff_effects(hotline, reply)


@voice_route("/admin/lang")
def admin_lang(hotline, rules, snap, pos):
    call = staff_call(hotline, LINE)
    return steps.language_chosen(call, rules, _signed_in(call), _digits(), pos.attempts)


@voice_route("/admin/topic")
def admin_topic(hotline, rules, snap, pos):
    call = staff_call(hotline, LINE)
    return steps.topic_chosen(call, _signed_in(call), pos.lang, _digits(), pos.attempts)


@voice_route("/admin/record")
def admin_record(hotline, rules, snap, pos):
    call = staff_call(hotline, LINE)
    return steps.record(call, rules, _signed_in(call), pos.lang, request.args.get("tp"), pos.attempts,
                        int(hotline.config.audio_max_seconds))


@voice_route("/admin/recorded")
def admin_recorded(hotline, rules, snap, pos):
    call = staff_call(hotline, LINE)
    url = (_values().get("RecordingUrl") or "").strip()
    seconds = _values().get("RecordingDuration") or "0"
    return write_staff_effects(hotline, steps.recorded(call, _signed_in(call), pos.lang, request.args.get("tp"),
                                                       pos.attempts, url, seconds,
                                                       keep_days=hotline.config.callback_retention_days))


@voice_route("/admin/review")
def admin_review(hotline, rules, snap, pos):
    call = staff_call(hotline, LINE)
    reply = steps.reviewed(call, _signed_in(call), pos.lang, request.args.get("tp"), request.args.get("r", ""),
                           pos.attempts, _digits(), two_person=hotline.config.two_person_publishing)
    return write_staff_effects(hotline, reply)
