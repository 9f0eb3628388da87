"""Issue 26 part 4: the reference printed on a breach notice, keyed in on the hotline (key 8), proves the caller
is affected: the facts that apply to them, their place ahead in line, and a callback kept under the reference,
from any phone. Guesses are limited across calls and numbers, and nothing a caller hears tells whether an
unknown reference, or their number, is on a list."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import insert, select

from conftest import AUTH_TOKEN
from ivr.core import reference_codes
from ivr.store.affected import hasher
from ivr.store.models import Callback, NoticeCampaign, NoticeRecipient, QueueEntry
from ivr.store.notices import reference_hash_of
from ivr.store.state import set_mode
from ivr.tools.simulate import FlaskTransport, HttpTransport, SimulatedCall
from test_notices import make_notice_app, notice_app, stub  # noqa: F401  (fixtures)
from helpers import wait_for
from test_console import as_role, page, users  # noqa: F401  (fixtures)

CONFIRMED = "Thank you. That reference is on our notice list: your details were involved in this incident."
FAILED = "We could not confirm that reference. Please check the number on our notice and try again later."
ON_THE_LIST = "+12025550181"  # a recipient of the notice
CODE = "482100937"  # completed with its check digit below
UNKNOWN = "731154082"  # a well-formed code no notice carried


def code(payload: str) -> str:
    return payload + reference_codes._luhn_digit(payload)


def add_recipient(hotline, number: str, reference: str, exposed: str | None = "card") -> None:
    """A campaign with one person on it, as notify's planner stores one: number hashed, reference hashed."""
    secret = hotline.config.secret_key
    with hotline.db.write() as conn:
        campaign = conn.execute(insert(NoticeCampaign).values(name="December notice", state="finished",
                                                              statements='{"en": "We were breached."}')
                                .returning(NoticeCampaign.id)).scalar_one()
        conn.execute(insert(NoticeRecipient).values(
            campaign_id=campaign, number_hash=hasher(secret)(number), language="en", exposed=exposed,
            reference_hash=reference_hash_of(secret, reference), state="delivered"))


@pytest.fixture
def live(hotline):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    add_recipient(hotline, ON_THE_LIST, code(CODE))
    return hotline


def call(app, keys, caller="+12025550190", hold_keys=None):
    from ivr.tools.simulate import HoldPlan

    plan = HoldPlan(keys=hold_keys) if hold_keys else None
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys, caller=caller, hold=plan).run()
    app.extensions["ivr"].recorder.flush()
    return result


def enqueued(result) -> list[str]:
    return [d.find("Enqueue").text for d in result.documents if d.find("Enqueue") is not None]


def answer_to(result, digits: str) -> str:
    """The TwiML answering the reference keyed in, without what differs by call (its CallSid, the digits)."""
    index = next(i for i, (url, params) in enumerate(result.requests)
                 if url.split("?")[0].endswith("/voice/verify") and params.get("Digits") == digits)
    return ET.tostring(result.documents[index], encoding="unicode").replace(result.call_sid, "").replace(digits, "")


def test_the_proved_reference_rides_in_every_link_of_the_call_and_books_the_callback_under_it(rules_file):
    """Pure flow: after a confirmed reference, each URL handed to Twilio carries its key (so /voice/callback
    and the hold loop know the caller proved it), and the callback is booked under it."""
    from datetime import datetime, timezone

    from ivr.core import flow, verification
    from ivr.core.rules import load
    from ivr.core.snapshot import Content, Snapshot
    from ivr.core.verbs import Context, Gather, Position

    rules, snap = load(rules_file), Snapshot("live", Content())

    key = "ab" * 16
    reply = verification.checked(rules, Position("en", 0, 3), code(CODE), lambda: verification.Failures(0, 0),
                                 lambda digits: verification.Listed("card", key))
    gather = reply.verbs[0]
    assert isinstance(gather, Gather) and ("v", key) in gather.action.params
    pos = Position("en", 0, 4, key)
    ctx = Context(datetime.now(timezone.utc), call_sid="CA1", verified=True)
    for link in (pos.link("/voice/menu"), pos.again(2).link("/voice/menu")):
        assert ("v", key) in link.params
    held = flow.hold(rules, snap, pos, ctx, "affected", 20, 1)
    assert ("v", key) in held.verbs[0].action.params
    booked = flow.hold_choice(rules, snap, pos, ctx, "affected", 20, "1")
    assert [e.reference for e in booked.effects] == [key]
    assert verification.carried(key) == key and verification.carried("x' or 1=1") == ""



def test_a_verified_caller_offered_a_callback_or_voicemail_keeps_the_reference_and_books_under_it(rules_file):
    """Pure flow, message mode (nobody taking calls): the callback offer, the voicemail a withheld number gets
    instead, and a key on hold other than 1 each hand Twilio a link that still carries the reference, and
    what the caller books there is kept under it. Lost on the way, the callback would go to the phone they
    happen to call from, at everyone's priority."""
    from datetime import datetime, timezone

    from ivr.core import flow
    from ivr.core.rules import load
    from ivr.core.snapshot import Content, Snapshot
    from ivr.core.verbs import Context, Gather, Position, Record, Redirect

    rules, snap, key = load(rules_file), Snapshot("message", Content()), "cd" * 16
    pos = Position("es", 0, 4, key)
    known = Context(datetime.now(timezone.utc), call_sid="CA1", verified=True)
    withheld = Context(datetime.now(timezone.utc), call_sid="CA2", caller_known=False, verified=True)

    offer = flow.route(rules, snap, pos, known, "agent")
    (gather,) = [v for v in offer.verbs if isinstance(v, Gather) and v.action.route == "/voice/callback"]
    assert ("v", key) in gather.action.params and offer.outcome == "callback-offered"
    (record,) = [v for v in flow.route(rules, snap, pos, withheld, "agent").verbs if isinstance(v, Record)]
    assert record.action.route == "/voice/voicemail" and ("v", key) in record.action.params

    accepted = flow.callback_choice(rules, snap, pos, known, "affected", 20, "1")
    left = flow.voicemail_left(rules, snap, pos, "affected", 20, "https://api.twilio.com/rec/RE1")
    assert [(e.reason, e.reference) for e in accepted.effects + left.effects] == [
        ("callback offered", key), ("voicemail", key)]

    (back,) = flow.hold_choice(rules, snap, pos, known, "affected", 20, "2").verbs
    assert isinstance(back, Redirect) and back.to.route == "/voice/hold" and ("v", key) in back.to.params
    (_, back) = flow.hold_choice(rules, snap, pos, withheld, "affected", 20, "1").verbs
    assert ("v", key) in back.to.params  # no number to call back: back on hold, still verified


def test_a_confirmed_reference_is_said_in_the_callers_language_and_recorded_as_this_steps_attempt(rules_file):
    """Pure: a Spanish caller hears the confirmation, what was exposed and what to press in Spanish; the menu's
    usual time to press a key; the call's outcome is "verified" and the attempt is recorded at this step."""
    from ivr.core import verification
    from ivr.core.rules import load
    from ivr.core.verbs import Gather, Position, Redirect, Say

    shipped, key = load(rules_file), "ef" * 16
    rules = shipped.model_copy(update={"menu": shipped.menu.model_copy(update={"timeout_seconds": 9})})
    reply = verification.checked(rules, Position("es", 0, 5), code(CODE) + "#", lambda: verification.Failures(0, 0),
                                 lambda digits: verification.Listed("card", key))
    gather, menu = reply.verbs
    assert isinstance(gather, Gather) and gather.timeout == rules.menu.timeout_seconds
    assert gather.prompts == tuple(Say(rules.prompt("es", name), "es")
                                   for name in ("verify_confirmed", "exposed_card", "verify_next"))
    assert menu == Redirect(Position("es", 0, 5, key).link("/voice/menu"))
    assert (reply.outcome, reply.effects) == ("verified", [verification.VerifyAttempt(True, 5)])
    assert [(e.kind, e.detail) for e in reply.events] == [("verify", verification.OK)]


@pytest.mark.parametrize("keys, looked_up", [("123456", True), ("1234567890123456", True), ("12345", False),
                                             ("12345678901234567", False), ("12345x", False)])
def test_only_a_reference_of_a_possible_length_is_looked_up(rules_file, keys, looked_up):
    """Between the rules' min_digits and max_digits (6 and 16 here), digits only: anything else is wrong
    without a lookup, and sounds the same as a wrong one that was looked up."""
    from ivr.core import verification
    from ivr.core.rules import load

    asked = []
    result, _ = verification.outcome(load(rules_file), keys, lambda: verification.Failures(0, 0),
                                     lambda digits: asked.append(digits))
    assert result == verification.WRONG and asked == ([keys] if looked_up else [])

def test_a_notice_reference_keyed_in_from_another_phone_is_recognised(app, live):
    """The code from the text, keyed in from a phone that is on no list: the caller hears they were
    affected and what was exposed, and is put ahead in the affected customers' queue."""
    result = call(app, ["8", code(CODE), "0"])
    said = result.said()
    after = said[said.index(CONFIRMED):]
    assert after[:3] == [CONFIRMED, live.rules.rules.prompt("en", "exposed_card"),
                         "To speak with a member of our team now, press 0. For the full menu, press 9."]
    assert enqueued(result) == ["affected"]
    with live.db.read() as conn:
        row = conn.execute(select(QueueEntry.queue, QueueEntry.priority, QueueEntry.verified)
                           .where(QueueEntry.call_sid == result.call_sid)).one()
    assert tuple(row) == ("affected", 20, True)
    assert enqueued(call(app, ["0"])) == ["breach-general"]  # the same phone without it: everyone's line


def test_the_callback_a_verified_caller_asks_for_is_kept_under_their_reference(app, live, as_role):
    """Asked for on hold, from two phones: one callback owed, to the reference, at the affected priority;
    a caller who never proved it gets their own, under their number. Agents see which is which."""
    first = call(app, ["8", code(CODE), "0"], caller="+12025550191", hold_keys=["1"])
    owed = wait_for(lambda: _callbacks(live))
    second = call(app, ["8", code(CODE), "0"], caller="+12025550192", hold_keys=["1"])
    assert any(s.startswith("Thank you. We already had your request for a call back") for s in second.said())
    assert len(_callbacks(live)) == 1
    (row,) = _callbacks(live)
    key = reference_hash_of(live.config.secret_key, code(CODE))
    assert (row.call_sid, row.number_hash, row.queue, row.priority) == (first.call_sid, f"ref:{key}", "affected", 20)
    assert owed[0].number_hash == row.number_hash
    call(app, ["0"], caller="+12025550191", hold_keys=["1"])  # the same phone, reference not keyed: its own
    assert wait_for(lambda: len(_callbacks(live)) == 2)
    assert _callbacks(live)[1].number_hash == live.caller_identity("+12025550191")[0]
    worklist = page(as_role("agent").get("/console/callbacks"))
    assert worklist.count("(verified with the reference on their notice)") == 1


def _callbacks(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(Callback.call_sid, Callback.number_hash, Callback.queue, Callback.priority)
                            .order_by(Callback.id)).all()


def test_guesses_are_limited_across_calls_and_numbers(app, live, rules_file):
    rules_file.write_text(rules_file.read_text().replace("attempts_per_caller: 5", "attempts_per_caller: 2")
                          .replace("attempts_per_line: 300", "attempts_per_line: 4"))
    for n in range(2):  # two wrong guesses, each in a call of its own
        assert FAILED in call(app, ["8", code(f"11111111{n}")], caller="+12025550193").said()
    refused = call(app, ["8", code(CODE), "0"], caller="+12025550193")  # the right one, past this phone's limit
    assert CONFIRMED not in refused.said() and enqueued(refused) == ["breach-general"]
    assert CONFIRMED in call(app, ["8", code(CODE)], caller="+12025550194").said()  # another phone: fine
    for n in range(2):  # guesses from ever new numbers meet the whole line's limit
        call(app, ["8", code(f"22222222{n}")], caller=f"+120255502{n:02d}")
    refused_line = call(app, ["8", code(CODE), "0"], caller="+12025550195")
    assert CONFIRMED not in refused_line.said() and enqueued(refused_line) == ["breach-general"]
    assert answer_to(refused_line, code(CODE)) == answer_to(refused, code(CODE))


def test_an_unknown_reference_sounds_like_a_wrong_one_whoever_calls(app, live):
    """A well-formed code on no notice, keyed in from the recipient's own number (on a campaign and on the
    breach list) or from a number on no list, and a mistyped one (check digit wrong): one and the same
    answer, then the same menu and the same line."""
    from ivr.store.models import AffectedNumber

    with live.db.write() as conn:
        conn.execute(insert(AffectedNumber).values(number_hash=hasher(live.config.secret_key)(ON_THE_LIST)))
    assert live.is_affected(ON_THE_LIST) and not live.is_affected("+12025550196")
    from_recipient = call(app, ["8", code(UNKNOWN), "0"], caller=ON_THE_LIST)
    from_stranger = call(app, ["8", code(UNKNOWN), "0"], caller="+12025550196")
    mistyped = code(CODE)[:-1] + str((int(code(CODE)[-1]) + 1) % 10)
    typo = call(app, ["8", mistyped, "0"], caller="+12025550197")
    assert FAILED in from_recipient.said() and CONFIRMED not in from_recipient.said()
    assert answer_to(from_recipient, code(UNKNOWN)) == answer_to(from_stranger, code(UNKNOWN)) \
        == answer_to(typo, mistyped)
    assert from_recipient.said() == from_stranger.said()
    # The same line; the breach list by caller ID only moves a caller's place in it (docs/security.md).
    assert enqueued(from_stranger) == ["breach-general"] and enqueued(from_recipient) == ["breach-general-p20"]


@pytest.mark.slow
def test_under_ivr_serve_a_notice_reference_is_recognised(server, live):
    srv = server(workers=2)
    result = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["8", code(CODE), "0"],
                           caller="+12025550198").run()
    assert CONFIRMED in result.said() and enqueued(result) == ["affected"]
    wrong = SimulatedCall(HttpTransport(srv.url), AUTH_TOKEN, keys=["8", code(UNKNOWN), "0"],
                          caller="+12025550199").run()
    assert FAILED in wrong.said() and enqueued(wrong) == ["breach-general"]

    def verified_entry():  # the queue entry reaches the database from the spool
        with live.db.read() as conn:
            return conn.execute(select(QueueEntry.verified).where(QueueEntry.call_sid == result.call_sid)).scalar()

    assert wait_for(verified_entry, timeout=30) is True


def test_the_reference_in_a_text_the_sender_sent_is_recognised_on_the_hotline(notice_app, stub, tmp_path):
    """End to end in-process: a campaign planned from a list and sent to Twilio's stand-in; the reference in
    the text one person got, keyed in from another phone, gives them the facts for them and the priority."""
    from ivr.core.notices import references_in
    from ivr.store.notices import change_state
    from notices_helpers import list_file
    from test_notices import plan, run_sender, state_of

    hotline = notice_app.extensions["ivr"]
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    report = plan(hotline, list_file(tmp_path, ["+12025550301,en,card", "+12025550302,es,"]))
    change_state(hotline.db, report.campaign_id, "send", actor="test", reason="disclosure day")
    assert run_sender(hotline, lambda: state_of(hotline.db, report.campaign_id) == "finished")
    (text,) = [m["body"] for m in stub.created if m["to"] == "+12025550301"]
    (reference,) = references_in(text)
    result = call(notice_app, ["8", reference, "0"], caller="+12025550390")
    said = result.said()
    assert CONFIRMED in said and hotline.rules.rules.prompt("en", "exposed_card") in said
    assert enqueued(result) == ["affected"]
