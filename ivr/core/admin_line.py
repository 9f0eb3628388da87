"""The admin phone line as pure steps: record an announcement by phone, hear it back, then publish it.

PIN (three tries a call, then goodbye; every try audited; limited across calls by ivr/store/pin_guard.py)
-> language -> topic -> <Record> -> played back -> 1 publish, 2 record again, 3 discard. Publishing is a
job (ivr/worker/phone_recording.py) that fetches the recording and puts it through the upload pipeline;
with two-person publishing the recording then awaits a second person's approval, and the admin is told so.
A recording is deleted at Twilio (a job): once fetched for publishing, when discarded or recorded again,
and at the latest after IVR_CALLBACK_RETENTION_DAYS (an admin who hung up at the review).
webhooks/admin_line.py looks up the PIN and calls these.
"""
from __future__ import annotations

from ivr.core.effects import PHONE_RECORDING_JOB, Audit, EnqueueJob, delete_recording
from ivr.core.rules import Rules
from ivr.core.snapshot import TOPICS
from ivr.core.staff_call import StaffCall, bye, pin_locked, say
from ivr.core.verbs import Event, Gather, Hangup, Link, PlayUrl, Record, Redirect, Reply

MAX_PIN_TRIES = 3
MAX_TRIES = 3
TOPIC_NAMES = {"main": "the main announcement", "details": "the details", "advice": "what callers should do"}
EXPIRED = "This session has expired. Goodbye."


def _audit(actor: str, action: str, subject: str = "admin line", to_value: str | None = None, reason: str = ""):
    return Audit(actor, action, subject, to_value, reason)


def _pin_prompt(tries: int, lead: tuple = ()) -> list:
    gather = Gather(Link.to("/voice/admin/pin", t=tries), lead + (
        say("Announcement line. Enter your PIN, then press the pound key."),), timeout=10, num_digits=None)
    return [gather, say("We did not get a PIN. Goodbye."), Hangup()]


def start(locked: bool = False) -> Reply:
    """`locked`: the line takes no PIN from this caller ID now (ivr/store/pin_guard.py)."""
    return pin_locked("admin_line") if locked else Reply(_pin_prompt(0), [Event("admin_line", "pin asked")])


def pin_entered(call: StaffCall, rules: Rules, tries: int, admin: str | None, locked: bool = False) -> Reply:
    """The admin whose PIN was entered (None: no admin has it). `locked`: this wrong PIN was one too many
    (ivr/store/pin_guard.py), so the line takes no more from this caller ID for now."""
    if admin is None:
        tries += 1
        effects = [_audit(call.caller, "admin_line.pin_failed", to_value=f"try {tries} of {MAX_PIN_TRIES}")]
        if locked:
            return pin_locked("admin_line", effects)
        if tries >= MAX_PIN_TRIES:
            effects.append(_audit(call.caller, "admin_line.locked_out", to_value="too many wrong PINs; call ended"))
            return bye("That PIN is not right. Goodbye.", Event("admin_line", "locked out"), effects)
        return Reply(_pin_prompt(tries, (say("That PIN is not right."),)), [Event("admin_line", "wrong pin")],
                     effects=effects)
    return Reply(_language_menu(call, rules, admin), [Event("admin_line", f"login {admin}")],
                 effects=[_audit(admin, "admin_line.login", to_value=call.caller)])


def _language_menu(call: StaffCall, rules: Rules, name: str, lead: tuple = (), tries: int = 0) -> list:
    choices = " ".join(f"To record in {lang.name}, press {lang.key}." for lang in rules.languages.values())
    link = call.link("/voice/admin/lang", name, a=tries)
    return [Gather(link, lead + (say(choices),), timeout=8), Redirect(link)]


def _next_try(attempts: int) -> int | None:
    """The menu's failed tries with this one, or None when that was the last allowed: like the caller
    menus, a silent or lost admin is let go instead of holding the line open."""
    return attempts + 1 if attempts + 1 < MAX_TRIES else None


def language_chosen(call: StaffCall, rules: Rules, name: str | None, digits: str | None, attempts: int = 0) -> Reply:
    if name is None:
        return bye(EXPIRED, Event("admin_line", "bad session"))
    lang = next((code for code, l in rules.languages.items() if l.key == digits), None)
    if lang is None:
        tries = _next_try(attempts)
        if tries is None:
            return bye("No language was chosen. Nothing was recorded. Goodbye.", Event("admin_line", "no language"))
        return Reply(_language_menu(call, rules, name, (say("Please choose a language."),), tries))
    return Reply(_topic_menu(call, name, lang))


def _topic_menu(call: StaffCall, name: str, lang: str, lead: tuple = (), tries: int = 0) -> list:
    choices = " ".join(f"To record {TOPIC_NAMES[t]}, press {i}." for i, t in enumerate(TOPICS, start=1))
    link = call.link("/voice/admin/topic", name, l=lang, a=tries)
    return [Gather(link, lead + (say(choices),), timeout=8), Redirect(link)]


def topic_chosen(call: StaffCall, name: str | None, lang: str, digits: str | None, attempts: int = 0) -> Reply:
    if name is None:
        return bye(EXPIRED, Event("admin_line", "bad session"))
    digits = digits or ""
    if not (digits.isdigit() and 1 <= int(digits) <= len(TOPICS)):
        tries = _next_try(attempts)
        if tries is None:
            return bye("Nothing was chosen. Nothing was recorded. Goodbye.", Event("admin_line", "no topic"))
        return Reply(_topic_menu(call, name, lang, (say("Please choose what to record."),), tries))
    topic = TOPICS[int(digits) - 1]
    return Reply([Redirect(call.link("/voice/admin/record", name, l=lang, tp=topic, a=0))])


def record(call: StaffCall, rules: Rules, name: str | None, lang: str, topic: str | None, attempts: int,
           max_seconds: int) -> Reply:
    if name is None or topic not in TOPICS:
        return bye(EXPIRED, Event("admin_line", "bad session"))
    if attempts >= MAX_TRIES:
        return bye("No recording was made. Nothing was published. Goodbye.", Event("admin_line", "no recording"))
    params = dict(l=lang, tp=topic)
    return Reply([
        say(f"Record {TOPIC_NAMES[topic]} in {rules.languages[lang].name} after the tone. "
            "Press the pound key when you are done."),
        Record(call.link("/voice/admin/recorded", name, **params), max_seconds),
        # Silence: Twilio skips the action and continues here.
        Redirect(call.link("/voice/admin/record", name, a=attempts + 1, **params)),
    ])


def _review_menu(call: StaffCall, name: str, params: dict, lead: tuple) -> list:
    link = call.link("/voice/admin/review", name, **params)
    prompt = say("To publish this recording, press 1. To record again, press 2. To discard it, press 3.")
    return [Gather(link, lead + (prompt,), timeout=8), Redirect(link)]


def recorded(call: StaffCall, name: str | None, lang: str, topic: str | None, attempts: int, url: str,
             seconds: str, *, keep_days: int) -> Reply:
    """Twilio's <Record> action: play the recording back and ask what to do with it. Its deletion at Twilio
    is planned now, `keep_days` ahead, for an admin who hangs up at the review; publishing it or throwing
    it away brings that forward (a publishing job that fails leaves it planned: to be retried until then)."""
    if name is None or topic not in TOPICS:
        return bye(EXPIRED, Event("admin_line", "bad session"))
    subject = f"{lang}/{topic}"
    if not url or not seconds.isdigit() or int(seconds) < 1:
        return Reply([say("That recording was too short."),
                      Redirect(call.link("/voice/admin/record", name, l=lang, tp=topic, a=attempts + 1))],
                     effects=_deleted_at_twilio(url, name, f"{subject}: too short"))
    params = dict(l=lang, tp=topic, r=url, a=0)
    return Reply(_review_menu(call, name, params, (say("Here is your recording."), PlayUrl(url))),
                 [Event("admin_line", f"recorded {seconds} s")],
                 effects=_deleted_at_twilio(url, name, f"{subject}: recorded on the admin line, kept {keep_days} days",
                                            keep_days * 86_400))


def _deleted_at_twilio(url: str, name: str, why: str, after_s: int = 0) -> list:
    """The job deleting a recording where Twilio made it (none for another URL), `after_s` from now."""
    job = delete_recording(url, name, why, after_s)
    return [job] if job else []


def reviewed(call: StaffCall, name: str | None, lang: str, topic: str | None, url: str, attempts: int,
             choice: str | None, two_person: bool = True) -> Reply:
    """1 publish (a job fetches and publishes the recording; with `two_person` it awaits approval instead),
    2 record again, 3 discard."""
    if name is None or topic not in TOPICS or not url:
        return bye(EXPIRED, Event("admin_line", "bad session"))
    subject = f"{lang}/{topic}"
    if choice == "1":
        job = EnqueueJob(PHONE_RECORDING_JOB, {"recording_url": url, "lang": lang, "topic": topic, "actor": name,
                                               "call_sid": call.call_sid},
                         f"{PHONE_RECORDING_JOB}:{call.call_sid}:{url}"[:160])
        audit = _audit(name, "announcement.phone_recorded", subject,
                       "queued; it will await approval" if two_person else "queued for publishing",
                       "recorded on the admin phone line")
        return bye("Thank you. Your recording will be saved within a minute. It awaits approval by a second "
                   "person: callers do not hear it until then. Goodbye." if two_person else
                   "Thank you. Your recording will be published within a minute. Goodbye.",
                   Event("admin_line", "publish"), [job, audit])
    if choice == "2":
        return Reply([Redirect(call.link("/voice/admin/record", name, l=lang, tp=topic, a=0))],
                     effects=_deleted_at_twilio(url, name, f"{subject}: recorded again on the admin line"))
    if choice == "3" or attempts + 1 >= MAX_TRIES:
        return bye("The recording was discarded. Nothing was published. Goodbye.", Event("admin_line", "discard"),
                   [_audit(name, "announcement.phone_discarded", subject, "recording discarded; nothing published"),
                    *_deleted_at_twilio(url, name, f"{subject}: discarded on the admin line")])
    params = dict(l=lang, tp=topic, r=url, a=attempts + 1)
    return Reply(_review_menu(call, name, params, (say("Please choose."),)))
