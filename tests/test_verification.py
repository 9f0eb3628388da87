"""Key 8: a caller proves they are on the breach list with the reference on the company's notice, and gets
its benefits; wrong, unknown and over-the-limit references all sound the same (issue 23 item 2)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from conftest import AUTH_TOKEN
from ivr.core import agent_line
from ivr.core.rules import load
from ivr.store.models import AffectedReference, QueueEntry, VerificationAttempt
from ivr.store.state import set_mode
from ivr.store.verification import import_references, on_list
from ivr.tools.simulate import FlaskTransport, SimulatedCall

REFERENCE = "4821009377"  # printed on the notice as 4821-0093-77
CONFIRMED = "Thank you. That reference is on our notice list: your details were involved in this incident."
FAILED = "We could not confirm that reference. Please check the number on our notice and try again later."


@pytest.fixture
def live(hotline, tmp_path):
    set_mode(hotline.db, "live", reason="agents on shift", actor="test")
    notices = tmp_path / "notices.csv"
    notices.write_text("phone,reference,exposed\n+12125550777,4821-0093-77,card\n+12125550778,5550001111,\n")
    import_references(hotline.db, notices, secret_key=hotline.config.secret_key, actor="test",
                      limits=hotline.rules.rules.verification)
    return hotline


def call(app, keys, caller="+15555550123"):
    result = SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys, caller=caller).run()
    app.extensions["ivr"].recorder.flush()  # the attempt reaches the database as the spool writer writes it
    return result


def enqueued(result) -> list[str]:
    return [d.find("Enqueue").text for d in result.documents if d.find("Enqueue") is not None]


def entry(hotline, call_sid):
    with hotline.db.read() as conn:
        return conn.execute(select(QueueEntry.queue, QueueEntry.priority, QueueEntry.affected, QueueEntry.verified)
                            .where(QueueEntry.call_sid == call_sid)).one()


def test_a_verified_reference_gets_the_lists_priority_from_any_phone(app, live):
    """Severity is high: a verified caller reaches the affected customers' own queue (priority 20); the same
    phone without the reference is everyone else (not on the list by caller ID)."""
    plain = call(app, ["0"])
    verified = call(app, ["8", REFERENCE, "0"])
    assert enqueued(plain) == ["breach-general"] and enqueued(verified) == ["affected"]
    said = verified.said()
    assert "Please enter the reference number printed on our notice, then press the pound key." in said
    after = said[said.index("Please enter the reference number printed on our notice, then press the pound key.") + 1:]
    assert after[:3] == [CONFIRMED, live.rules.rules.prompt("en", "exposed_card"),  # what the list says for them
                         "To speak with a member of our team now, press 0. For the full menu, press 9."]
    assert tuple(entry(live, verified.call_sid)) == ("affected", 20, True, True)
    assert tuple(entry(live, plain.call_sid)) == ("general", 10, False, False)
    with live.db.read() as conn:  # what the agent is told before the caller is put through
        row = conn.execute(select(QueueEntry.__table__).where(QueueEntry.call_sid == verified.call_sid)).one()
    told = agent_line.whisper(live.rules.rules, {**row._mapping, "wait_s": 30})
    assert "on the affected customers list, verified with the reference on their notice" in told
    with live.db.read() as conn:
        assert conn.execute(select(VerificationAttempt.ok, VerificationAttempt.caller_hash)).all() == [
            (True, live.caller_identity("+15555550123")[0])]


def test_verification_in_spanish(app, live):
    result = call(app, ["3", "8", REFERENCE, "0"])
    said = result.said()
    assert "Por favor ingrese el número de referencia impreso en nuestro aviso y luego oprima la tecla numeral." \
        in said
    assert any(s.startswith("Gracias. Esa referencia está en nuestra lista de avisos") for s in said)
    assert any(s.startswith("Nuestros registros indican que se expusieron el número de su tarjeta") for s in said)
    assert enqueued(result) == ["affected"]
    wrong = call(app, ["3", "8", "1234567"])
    assert "No pudimos confirmar esa referencia. Por favor revise el número en nuestro aviso e inténtelo de " \
           "nuevo más tarde." in wrong.said()


def answer_to(result, reference: str):
    """The TwiML document answering the reference keyed in."""
    index = next(i for i, (url, params) in enumerate(result.requests)
                 if url.split("?")[0].endswith("/voice/verify") and params.get("Digits") == reference)
    return result.documents[index]


def test_wrong_unknown_and_refused_references_sound_the_same_across_calls_and_caller_ids(app, live, rules_file):
    import xml.etree.ElementTree as ET

    rules_file.write_text(rules_file.read_text().replace("attempts_per_caller: 5", "attempts_per_caller: 2")
                          .replace("attempts_per_line: 300", "attempts_per_line: 4"))
    assert load(rules_file).verification.attempts_per_caller == 2

    def doc(result, reference):
        return ET.tostring(answer_to(result, reference), encoding="unicode").replace(result.call_sid, "")

    wrong = call(app, ["8", "1111111111"], caller="+15555550001")  # a guess: on no notice
    short = call(app, ["8", "12"], caller="+15555550001")  # too short to be one
    refused_own = call(app, ["8", REFERENCE], caller="+15555550001")  # the right one, past this caller's limit
    assert FAILED in wrong.said() and FAILED in refused_own.said() and CONFIRMED not in refused_own.said()
    assert doc(wrong, "1111111111").replace("1111111111", "") == doc(short, "12").replace("12", "") \
        == doc(refused_own, REFERENCE).replace(REFERENCE, "")
    assert enqueued(call(app, ["8", REFERENCE, "0"], caller="+15555550002")) == ["affected"]  # another phone: fine
    # Guesses from ever new caller IDs meet the line's limit: then the right reference is refused too.
    for n in range(3, 5):
        assert FAILED in call(app, ["8", f"99999999{n:02d}"], caller=f"+155555500{n:02d}").said()
    refused_line = call(app, ["8", REFERENCE, "0"], caller="+15555550009")
    assert CONFIRMED not in refused_line.said() and enqueued(refused_line) == ["breach-general"]
    assert doc(refused_line, REFERENCE) == doc(refused_own, REFERENCE)
    with live.db.read() as conn:  # each attempt is counted once, written by the spool writer
        oks = [ok for (ok,) in conn.execute(select(VerificationAttempt.ok).order_by(VerificationAttempt.id))]
    assert oks == [False, False, False, True, False, False, False]


def test_references_are_imported_as_keyed_hashes_once(live, tmp_path):
    with live.db.read() as conn:
        stored = [h for (h,) in conn.execute(select(AffectedReference.reference_hash))]
    assert len(stored) == 2 and all(len(h) == 16 and b"4821" not in h for h in stored)
    again = tmp_path / "again.csv"
    again.write_text("reference;exposed\n4821009377;contact\n12;\n777888999;passwords\n".replace(";", ","))
    report = import_references(live.db, again, secret_key=live.config.secret_key, actor="test",
                               limits=live.rules.rules.verification)
    assert (report.rows_read, report.added, report.bad_rows) == (3, 0, 2)  # already there: keeps what it had
    assert report.bad_samples == ["line 3: 2 digits (references have 6-16)", "line 4: exposed 'passwords' is not "
                                  "one of the rules' verification.exposed (card, contact)"]
    assert on_list(live.db, live.config.secret_key, REFERENCE) == "card"
    assert on_list(live.db, live.config.secret_key, "5550001111") == ""  # on the list, nothing said: no facts
    assert on_list(live.db, live.config.secret_key, "5550001112") is None


def test_attempts_are_kept_only_while_they_count(app, live):
    from datetime import timedelta

    from ivr.store.models import utcnow
    from ivr.worker import retention

    call(app, ["8", "1111111111"])
    with live.db.write() as conn:
        conn.execute(VerificationAttempt.__table__.insert().values(
            call_sid="CA" + "0" * 32, step="verify?s=2#0", at=utcnow() - timedelta(minutes=61), caller_hash=None,
            ok=False))
    retention.run_once(live)
    with live.db.read() as conn:
        kept = conn.execute(select(VerificationAttempt.call_sid)).scalars().all()
    assert len(kept) == 1 and kept[0] != "CA" + "0" * 32  # this hour's attempt stays; the older one is gone


def test_nothing_keyed_in_is_no_attempt_and_back_to_the_menu(app, live):
    for keys in (["8", ""], ["8", "#"]):  # "": silent at the prompt
        result = call(app, keys + [""])
        assert FAILED not in result.said() and result.said().count(live.rules.rules.prompt("en", "menu")) >= 2
    with live.db.read() as conn:
        assert conn.execute(select(VerificationAttempt.id)).all() == []
