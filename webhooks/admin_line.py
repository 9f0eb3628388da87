"""The admin phone line (POST /voice/admin): record an announcement by phone, hear it, then publish it.

PIN (three tries, then goodbye; every try audited) -> language -> topic -> <Record> -> played back ->
1 publish, 2 record again, 3 discard. Publishing queues a job that fetches the recording from Twilio
(allow-listed hosts only) and puts it through the same pipeline as an upload; nothing slow or networked
happens in these webhooks. After the PIN, each URL carries a key binding the admin to this CallSid.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, request

from ivr.store import jobs
from ivr.store.audit import audit
from ivr.core.verbs import Event, Gather, Hangup, Link, PlayUrl, Record, Redirect, Reply, Say
from ivr.store.models import TOPICS
from ivr.store.users import phone_admin_for_pin
from webhooks.twilio_view import _call_sid, _digits, _values, twilio_route

MAX_PIN_TRIES = 3
MAX_TRIES = 3
TOPIC_NAMES = {"main": "the main announcement", "details": "the details", "advice": "what callers should do"}
LANG = "en"  # the admin line speaks to staff in the default staff language

bp = Blueprint("admin_line", __name__, url_prefix="/voice")
voice_route = twilio_route(bp)


def _say(text: str) -> Say:
    return Say(text, LANG)


def _bye(text: str, event: Event | None = None) -> Reply:
    return Reply([_say(text), Hangup()], [event] if event else [])


def _key(hotline, name: str) -> str:
    msg = f"admin-line:{_call_sid()}:{name}".encode()
    return hmac.new(hotline.config.secret_key.encode(), msg, hashlib.sha256).hexdigest()[:24]


def _session(hotline) -> str | None:
    """The admin this call authenticated as, if the URL's key matches this call."""
    name, key = request.args.get("u", ""), request.args.get("k", "")
    return name if name and hmac.compare_digest(key, _key(hotline, name)) else None


def _link(hotline, route: str, name: str, **params) -> Link:
    return Link.to(route, u=name, k=_key(hotline, name), **params)


def _caller() -> str:
    number = _values().get("From") or ""
    return f"phone ***{number[-4:]}" if len(number) >= 4 else "phone (unknown)"


def _audit(hotline, actor: str, action: str, subject: str = "admin line", to_value: str | None = None) -> None:
    with hotline.db.write() as conn:
        audit(conn, actor=actor, action=action, subject=subject, to_value=to_value)


def _pin_prompt(tries: int, lead: list | None = None) -> list:
    gather = Gather(Link.to("/voice/admin/pin", t=tries), tuple(lead or ()) + (
        _say("Announcement line. Enter your PIN, then press the pound key."),), timeout=10, num_digits=None)
    return [gather, _say("We did not get a PIN. Goodbye."), Hangup()]


@voice_route("/admin")
def admin(hotline, rules, snap, pos):
    return Reply(_pin_prompt(0), [Event("admin_line", "pin asked")])


@voice_route("/admin/pin")
def admin_pin(hotline, rules, snap, pos):
    tries = min(int(request.args.get("t", "0") or 0) if request.args.get("t", "0").isdigit() else 0, MAX_PIN_TRIES)
    pin = _digits() or ""
    found = phone_admin_for_pin(hotline.db, pin) if pin.isdigit() else None
    if found is None:
        tries += 1
        _audit(hotline, _caller(), "admin_line.pin_failed", to_value=f"try {tries} of {MAX_PIN_TRIES}")
        if tries >= MAX_PIN_TRIES:
            _audit(hotline, _caller(), "admin_line.locked_out", to_value="too many wrong PINs; call ended")
            return _bye("That PIN is not right. Goodbye.", Event("admin_line", "locked out"))
        return Reply(_pin_prompt(tries, [_say("That PIN is not right.")]), [Event("admin_line", "wrong pin")])
    _, name = found
    _audit(hotline, name, "admin_line.login", to_value=_caller())
    return Reply(_language_menu(hotline, rules, name), [Event("admin_line", f"login {name}")])


def _language_menu(hotline, rules, name: str, lead: list | None = None) -> list:
    choices = " ".join(f"To record in {lang.name}, press {lang.key}." for lang in rules.languages.values())
    link = _link(hotline, "/voice/admin/lang", name)
    return [Gather(link, tuple(lead or ()) + (_say(choices),), timeout=8), Redirect(link)]


@voice_route("/admin/lang")
def admin_lang(hotline, rules, snap, pos):
    name = _session(hotline)
    if name is None:
        return _bye("This session has expired. Goodbye.", Event("admin_line", "bad session"))
    digits = _digits()
    lang = next((code for code, l in rules.languages.items() if l.key == digits), None)
    if lang is None:
        return Reply(_language_menu(hotline, rules, name, [_say("Please choose a language.")]))
    return Reply(_topic_menu(hotline, name, lang))


def _topic_menu(hotline, name: str, lang: str, lead: list | None = None) -> list:
    choices = " ".join(f"To record {TOPIC_NAMES[t]}, press {i}." for i, t in enumerate(TOPICS, start=1))
    link = _link(hotline, "/voice/admin/topic", name, l=lang)
    return [Gather(link, tuple(lead or ()) + (_say(choices),), timeout=8), Redirect(link)]


@voice_route("/admin/topic")
def admin_topic(hotline, rules, snap, pos):
    name = _session(hotline)
    if name is None:
        return _bye("This session has expired. Goodbye.", Event("admin_line", "bad session"))
    digits = _digits() or ""
    if not (digits.isdigit() and 1 <= int(digits) <= len(TOPICS)):
        return Reply(_topic_menu(hotline, name, pos.lang, [_say("Please choose what to record.")]))
    topic = TOPICS[int(digits) - 1]
    return Reply([Redirect(_link(hotline, "/voice/admin/record", name, l=pos.lang, tp=topic, a=0))])


@voice_route("/admin/record")
def admin_record(hotline, rules, snap, pos):
    name = _session(hotline)
    topic = request.args.get("tp")
    if name is None or topic not in TOPICS:
        return _bye("This session has expired. Goodbye.", Event("admin_line", "bad session"))
    if pos.attempts >= MAX_TRIES:
        return _bye("No recording was made. Nothing was published. Goodbye.", Event("admin_line", "no recording"))
    lang_name = rules.languages[pos.lang].name
    params = dict(l=pos.lang, tp=topic)
    return Reply([
        _say(f"Record {TOPIC_NAMES[topic]} in {lang_name} after the tone. Press the pound key when you are done."),
        Record(_link(hotline, "/voice/admin/recorded", name, **params), int(hotline.config.audio_max_seconds)),
        # Silence: Twilio skips the action and continues here.
        Redirect(_link(hotline, "/voice/admin/record", name, a=pos.attempts + 1, **params)),
    ])


def _review_menu(hotline, name: str, params: dict, lead: list) -> list:
    link = _link(hotline, "/voice/admin/review", name, **params)
    prompt = _say("To publish this recording, press 1. To record again, press 2. To discard it, press 3.")
    return [Gather(link, tuple(lead) + (prompt,), timeout=8), Redirect(link)]


@voice_route("/admin/recorded")
def admin_recorded(hotline, rules, snap, pos):
    name = _session(hotline)
    topic = request.args.get("tp")
    if name is None or topic not in TOPICS:
        return _bye("This session has expired. Goodbye.", Event("admin_line", "bad session"))
    url = (_values().get("RecordingUrl") or "").strip()
    seconds = _values().get("RecordingDuration") or "0"
    if not url or not seconds.isdigit() or int(seconds) < 1:
        return Reply([_say("That recording was too short."),
                      Redirect(_link(hotline, "/voice/admin/record", name, l=pos.lang, tp=topic, a=pos.attempts + 1))])
    params = dict(l=pos.lang, tp=topic, r=url, a=0)
    return Reply(_review_menu(hotline, name, params, [_say("Here is your recording."), PlayUrl(url)]),
                 [Event("admin_line", f"recorded {seconds} s")])


@voice_route("/admin/review")
def admin_review(hotline, rules, snap, pos):
    name = _session(hotline)
    topic, url = request.args.get("tp"), request.args.get("r", "")
    if name is None or topic not in TOPICS or not url:
        return _bye("This session has expired. Goodbye.", Event("admin_line", "bad session"))
    choice = _digits()
    subject = f"{pos.lang}/{topic}"
    if choice == "1":
        with hotline.db.write() as conn:
            jobs.enqueue(conn, jobs.PHONE_RECORDING, {"recording_url": url, "lang": pos.lang, "topic": topic,
                                                   "actor": name, "call_sid": _call_sid()},
                         dedupe_key=f"{jobs.PHONE_RECORDING}:{_call_sid()}:{url}"[:160])
            audit(conn, actor=name, action="announcement.phone_recorded", subject=subject,
                  to_value="queued for publishing", reason="recorded on the admin phone line")
        hotline.jobs.poke()
        return _bye("Thank you. Your recording will be published within a minute. Goodbye.",
                    Event("admin_line", "publish"))
    if choice == "2":
        return Reply([Redirect(_link(hotline, "/voice/admin/record", name, l=pos.lang, tp=topic, a=0))])
    if choice == "3" or pos.attempts + 1 >= MAX_TRIES:
        _audit(hotline, name, "announcement.phone_discarded", subject, "recording discarded; nothing published")
        return _bye("The recording was discarded. Nothing was published. Goodbye.", Event("admin_line", "discard"))
    params = dict(l=pos.lang, tp=topic, r=url, a=pos.attempts + 1)
    return Reply(_review_menu(hotline, name, params, [_say("Please choose.")]))
