"""No breached-list oracle (issue 23 item 2): until a caller proves who they are, nothing they hear depends
on whether their caller ID is on the breach list; the list moves them ahead in line and nothing more."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from ivr.config import PROJECT_ROOT
from ivr.core import flow
from ivr.core.rules import load
from ivr.core.snapshot import Content, Snapshot, Spoken
from ivr.core.verbs import Context, Position
from webhooks import twiml

RULES_PATH = PROJECT_ROOT / "routing_rules.yaml"
FAILED = "We could not confirm that reference. Please check the number on our notice and try again later."
CONTENT = Content(version=3, incident_id=7, incident_title="Card data theft", severity="high",
                  spoken={"en/main": Spoken("We were breached.", None, 1)})
MONDAY = datetime(2026, 11, 30, 5, 0, tzinfo=timezone.utc)  # 00:00 in New York
# Every hour of a week in New York (weekdays, weekend, nights) and Christmas Day.
INSTANTS = [MONDAY + timedelta(hours=h) for h in range(7 * 24)] + [datetime(2026, 12, 25, 15, tzinfo=timezone.utc)]


def heard(rules, lang: str, key: str, now: datetime, on_list: bool, mode: str = "live") -> str:
    """The TwiML a caller gets for a key, with the only list-dependent parts a caller cannot hear taken
    out: the priority in our URLs (`p=`) and the Twilio queue name's priority suffix (`-p20`)."""
    ctx = Context(now=now, call_sid="CA" + "1" * 32, affected=lambda: on_list)
    return without_priority(rules, flow.menu_choice(rules, Snapshot(mode, CONTENT), Position(lang, 0, 1), key, ctx))


def without_priority(rules, reply) -> str:
    root = ET.fromstring(twiml.render(reply, rules))
    for element in root.iter():
        for name, value in element.attrib.items():
            element.set(name, re.sub(r"([?&])p=\d+", r"\1p=", value))
        if element.tag == "Enqueue":
            element.text = re.sub(r"-p\d+$", "", element.text)
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("lang", ["en", "es"])
def test_a_number_on_the_list_hears_what_a_number_not_on_it_hears(lang):
    """The issue's probe: pressing 0 with the shipped rules and a high-severity incident, at any hour."""
    rules = load(RULES_PATH)
    for key in ("0", "7"):
        for mode in ("live", "message"):
            for now in INSTANTS:
                listed, unlisted = (heard(rules, lang, key, now, on, mode) for on in (True, False))
                assert listed == unlisted, (key, mode, now)
    # On hold, ahead in line or not, the same words (the place itself is Twilio's QueuePosition).
    ctx = Context(now=MONDAY, call_sid="CA" + "1" * 32)
    held = {without_priority(rules, flow.hold(rules, Snapshot("live", CONTENT), Position(lang, 0, 3), ctx, "general",
                                              priority, 2)) for priority in (10, 20)}
    assert len(held) == 1


OLD_RULE = """  - name: Affected customers during a high or critical incident, ahead of everyone else
    when: {affected: true, severity_at_least: high}
    then: {action: enqueue, queue: general, priority: 20}"""
AUDIBLE_RULE = """  - name: Affected customers during a high or critical incident
    when: {affected: true, severity_at_least: high}
    then: {action: enqueue, queue: affected}"""


def rules_check(config, path):
    from click.testing import CliRunner

    from ivr.ops.cli import main

    env = {"IVR_ENV": "production", "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "DATABASE_URL": config.db_url,
           "IVR_INSTANCE_PATH": str(config.instance_path), "IVR_SECRET_KEY": config.secret_key}
    return CliRunner().invoke(main, ["rules", "check", str(path)], env=env, catch_exceptions=False)


def test_rules_check_warns_about_a_rule_that_makes_the_list_audible_naming_line_and_field(config, tmp_path):
    """The rules of before (a queue of their own, open every day, for a caller ID on the list) still load:
    routing gives such callers everyone's queue at that priority, and the check says so, with line and field."""
    text = RULES_PATH.read_text()
    assert OLD_RULE in text
    audible = tmp_path / "audible.yaml"
    audible.write_text(text.replace(OLD_RULE, AUDIBLE_RULE))
    result = rules_check(config, audible)
    assert result.exit_code == 0 and "OK" in result.output
    line = 3 + text.splitlines().index(OLD_RULE.splitlines()[0])  # the rule's `then:`
    warnings = [w for w in result.output.splitlines() if "warning:" in w]
    assert len(warnings) == 1 and f"warning: line {line}: routing.3.then.queue: the breach list would be audible" \
        in warnings[0], result.output
    # ... and the callers it names hear what everyone hears, at every hour.
    rules = load(audible)
    for now in INSTANTS:
        assert heard(rules, "en", "0", now, True) == heard(rules, "en", "0", now, False), now

    shipped = rules_check(config, RULES_PATH)
    assert shipped.exit_code == 0 and "warning" not in shipped.output


def test_the_consoles_rules_check_shows_the_same_warning(app, hotline):
    """An admin checking an edit in the console sees what `ivr rules check` says, line and field."""
    import html

    from werkzeug.security import generate_password_hash

    from helpers import console_sign_in
    from ivr.store.models import User, utcnow

    with hotline.db.write() as conn:
        conn.execute(User.__table__.insert().values(name="ada", role="admin", active=True, created_at=utcnow(),
                                                    password_hash=generate_password_hash("admin password 1")))
    client = app.test_client()
    console_sign_in(client, "ada", "admin password 1")
    with client.session_transaction() as session:
        token = session["csrf"]
    text = RULES_PATH.read_text()
    body = html.unescape(client.post("/console/rules/validate", data={
        "text": text.replace(OLD_RULE, AUDIBLE_RULE), "csrf_token": token}).get_data(as_text=True))
    line = 3 + text.splitlines().index(OLD_RULE.splitlines()[0])
    assert "1 warning: these rules load, but do less than they say" in body
    assert re.search(rf">{line}</td><td[^>]*><code>routing\.3\.then\.queue</code></td><td[^>]*>the breach list "
                     "would be audible", body)
    plain = client.post("/console/rules/validate", data={"text": text, "csrf_token": token}).get_data(as_text=True)
    assert "No problems" in plain and "warning" not in plain


@pytest.mark.slow
def test_through_ivr_serve_a_spoofed_caller_id_learns_nothing_and_a_reference_is_limited(config, rules_file, server,
                                                                                          tmp_path):
    """The issue's probe under `ivr serve`, with rules that try to give listed callers a queue open every day
    while everyone else's is closed: a number on the list and one not on it hear the same. The reference
    on the notice does open that queue; wrong ones from two caller IDs, counted from what `ivr background`
    wrote, close it to a third attempt with the right one, which then sounds like a wrong one."""
    from sqlalchemy import func, select

    from conftest import AUTH_TOKEN
    from helpers import wait_for
    from ivr.store import affected
    from ivr.store.db import Database
    from ivr.store.models import AffectedNumber, VerificationAttempt
    from ivr.store.state import set_mode
    from ivr.store.verification import import_references
    from ivr.tools.simulate import HttpTransport, SimulatedCall

    text = rules_file.read_text().replace(OLD_RULE, AUDIBLE_RULE)
    text = text.replace("    twilio_name: breach-general\n", "    twilio_name: breach-general\n    hours: {timezone: "
                        "America/New_York, open: '08:00', close: '20:00', days: []}\n")  # never open
    rules_file.write_text(text.replace("attempts_per_line: 300", "attempts_per_line: 3"))
    listed, unlisted, reference = "+12125550777", "+12125550778", "4821009377"
    db = Database(config.db_url)
    try:
        with db.write() as conn:
            conn.execute(AffectedNumber.__table__.insert().values(
                number_hash=affected.number_hash(config.secret_key, listed)))
        notices = tmp_path / "notices.csv"
        notices.write_text(f"phone,reference\n{listed},{reference}\n")
        import_references(db, notices, secret_key=config.secret_key, actor="test", limits=load(rules_file).verification)
        set_mode(db, "live", reason="agents on shift", actor="test")
        srv = server(workers=2)

        def call(keys, caller):
            return SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=keys, caller=caller, max_requests=12).run()

        for lang_keys in ([], ["3"]):  # English, then Spanish
            on, off = call(lang_keys + ["0"], listed), call(lang_keys + ["0"], unlisted)
            assert on.said() == off.said() and on.ended == off.ended
            assert "Our team is not available right now." in on.said() or \
                "Nuestro equipo no está disponible en este momento." in on.said()
        verified = call(["8", reference, "0"], unlisted)  # from another phone: the reference is the proof
        assert any(s.startswith("Thank you. That reference is on our notice list") for s in verified.said())
        assert "Please hold. We are connecting you to a member of our team." in verified.said()

        def wrong_attempts():
            with db.read() as conn:
                return conn.execute(select(func.count()).select_from(VerificationAttempt)
                                    .where(VerificationAttempt.ok.is_(False))).scalar_one()

        for n, caller in enumerate(("+15555550101", "+15555550102", "+15555550101"), start=1):
            assert FAILED in call(["8", f"11112222{n}"], caller).said()
            assert wait_for(lambda: wrong_attempts() == n, timeout=20)  # written by ivr background, not the webhook
        refused = call(["8", reference, "0"], "+15555550103")
        assert not any(s.startswith("Thank you. That reference") for s in refused.said())
        assert FAILED in refused.said()
        assert "Our team is not available right now." in refused.said()  # everyone's queue: closed
    finally:
        db.dispose()
