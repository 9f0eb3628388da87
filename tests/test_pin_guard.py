"""PIN guessing on the staff lines is limited across calls: per caller ID and line-wide, kept in the database."""
from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from conftest import AUTH_TOKEN
from ivr.store import agents, users
from ivr.core.staff_call import PIN_LOCKED as LOCKED_MESSAGE
from ivr.store.models import AuditEntry, PinLock, utcnow
from ivr.tools.simulate import FlaskTransport, SimulatedCall

PIN = "482916"
WRONG = ["111111", "222222", "333333"]


def call(app, line, keys, caller):
    return SimulatedCall(FlaskTransport(app), AUTH_TOKEN, keys=keys, caller=caller).run(f"/voice/{line}")


def logged_in(result) -> bool:
    return any(s.startswith(("To record in", "Connecting you", "Nobody is waiting")) for s in result.said())


def locks(hotline, line):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry.to_value).where(AuditEntry.action == f"{line}_line.pin_lock")
                            .order_by(AuditEntry.id)).scalars().all()


def lock_count(line, limit) -> float:
    return REGISTRY.get_sample_value("ivr_pin_locks_total", {"line": line, "limit": limit}) or 0.0


def attacks_started(target) -> float:
    return REGISTRY.get_sample_value("ivr_attacks_started_total", {"target": target}) or 0.0


def end_locks(hotline):
    with hotline.db.write() as conn:
        conn.execute(update(PinLock).values(until=utcnow()))


@pytest.fixture
def admins(hotline):
    users.add_user(hotline.db, "dana", "admin", actor="test", phone_pin=PIN)
    return hotline


def test_admin_pin_guesses_across_calls_lock_that_caller_id_even_for_the_right_pin(app, config, admins, caplog):
    hotline, attacker = admins, "+15555550666"
    before = lock_count("admin", "caller")
    first = call(app, "admin", WRONG, attacker)
    assert first.said()[-1] == "That PIN is not right. Goodbye."  # three a call, as before
    with caplog.at_level(logging.ERROR, logger="ivr.store.pin_guard"):
        second = call(app, "admin", WRONG[:2], attacker)
    assert second.said()[-1] == LOCKED_MESSAGE  # the fifth wrong PIN in 15 minutes
    # The right PIN from that number is refused now, by every worker (another app on the same database).
    from ivr.app import create_app

    other = create_app(config)
    try:
        again = call(other, "admin", [PIN], attacker)
    finally:
        other.extensions["ivr"].close()
    assert again.said() == [LOCKED_MESSAGE] and not logged_in(again)
    assert logged_in(call(app, "admin", [PIN], "+15555559876"))  # the admin's own phone still works
    (entry,) = locks(hotline, "admin")
    assert "***0666: 5 wrong PINs in 15 min" in entry and "+1555" not in entry
    assert lock_count("admin", "caller") == before + 1
    assert any("admin line locked (caller)" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    end_locks(hotline)  # fifteen minutes later
    assert logged_in(call(app, "admin", [PIN], attacker))


def test_wrong_pins_from_many_numbers_slow_the_line_but_the_registered_phone_gets_in(app, config, admins):
    """Before: 48 wrong PINs from spoofed caller IDs shut the admin line for everyone, renewably."""
    hotline, own = admins, "+15555559876"
    users.set_phone(hotline.db, config.secret_key, "dana", own, actor="test")
    before = attacks_started("admin line")
    for n in range(16):  # 48 wrong PINs, three per number: no caller ID reaches its own limit
        assert call(app, "admin", WRONG, f"+1555551{n:04d}").said()[-1] == "That PIN is not right. Goodbye."
    assert attacks_started("admin line") == before
    last = call(app, "admin", WRONG, "+15555520000")
    assert last.said()[-1] == LOCKED_MESSAGE  # the 50th: under attack, a stranger's number gets one wrong PIN
    assert attacks_started("admin line") == before + 1
    assert logged_in(call(app, "admin", [PIN], own))  # her registered phone still gets in
    assert call(app, "admin", WRONG, "+15555520001").said()[-1] == LOCKED_MESSAGE  # one try, not three
    assert logged_in(call(app, "admin", [PIN], "+15555520002"))  # slowed, not shut: a first try is checked
    with hotline.db.read() as conn:
        (alarm,) = conn.execute(select(AuditEntry.to_value).where(AuditEntry.action == "admin_line.under_attack"))
    assert alarm[0].startswith("50 wrong PINs from all callers in 15 min")


def test_the_admin_line_can_take_pins_only_from_admins_own_numbers(config, admins):
    from ivr.app import create_app

    users.set_phone(admins.db, config.secret_key, "dana", "+15555559876", actor="test")
    app = create_app(config.with_overrides(admin_line_own_numbers=True))
    try:
        assert not logged_in(call(app, "admin", [PIN], "+15555550666"))  # her PIN, someone else's phone
        assert logged_in(call(app, "admin", [PIN], "+15555559876"))
    finally:
        app.extensions["ivr"].close()


def test_agent_pin_guesses_are_limited_per_caller_id_not_line_wide(config, hotline):
    from ivr.app import create_app

    phones = [f"+1555553{n:04d}" for n in range(4)]
    for n, phone in enumerate(phones):
        agents.add_agent(hotline.db, config.secret_key, f"agent{n}", phone, "2468", actor="test")
    app = create_app(config.with_overrides(pin_line_limit=9))  # the line-wide limit is a setting
    try:
        wrong = ["1111", "2222", "3333"]
        assert call(app, "agent", wrong, phones[0]).said()[-1] == "That PIN is not right. Goodbye."
        assert call(app, "agent", wrong, phones[0]).said()[-1] == LOCKED_MESSAGE  # 5th across calls
        assert call(app, "agent", ["2468"], phones[0]).said() == [LOCKED_MESSAGE]
        assert logged_in(call(app, "agent", ["2468"], phones[1]))  # another agent is not locked out
        call(app, "agent", wrong, phones[2])
        # 5 + 3 + 1 = 9: the line is under attack, but each caller ID here is an agent's registered phone
        assert call(app, "agent", wrong[:1], phones[3]).said()[-1] != LOCKED_MESSAGE
        assert logged_in(call(app, "agent", ["2468"], phones[1]))  # the line is never shut for everyone
        assert len(locks(hotline, "agent")) == 1
    finally:
        app.extensions["ivr"].close()


def test_admin_phone_pins_have_at_least_six_digits(hotline):
    with pytest.raises(users.UserError, match="6 to 12 digits"):
        users.add_user(hotline.db, "sam", "admin", actor="test", phone_pin="2468")
