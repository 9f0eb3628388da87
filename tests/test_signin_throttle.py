"""Console sign-in behind the HTTPS proxy: the client's address from X-Forwarded-For (trusted hops only),
throttling per name and address and per name across addresses, so strangers cannot lock an admin out."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from werkzeug.security import generate_password_hash

from helpers import console_sign_in
from ivr.store.models import AuditEntry, LoginFailure, SignInPass, User, utcnow

PASSWORD = "correct horse battery staple"
PROXY = "10.0.0.1"  # every request reaches the app from the proxy's address


@pytest.fixture
def proxied(config, hotline):
    """The app behind one trusted proxy, with an admin called ada (hashed cheaply: many sign-ins here)."""
    from ivr.app import create_app

    with hotline.db.write() as conn:
        conn.execute(insert(User).values(name="ada", role="admin", active=True, created_at=utcnow(),
                                         password_hash=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")))
    app = create_app(config.with_overrides(trusted_proxies=1))
    yield app
    app.extensions["ivr"].close()


def attempt(app, client_addr: str, password: str, forged: str = "", code: str = ""):
    """A sign-in through the proxy, which appends the address it saw to whatever the client sent."""
    xff = f"{forged}, {client_addr}" if forged else client_addr
    return console_sign_in(app.test_client(), "ada", password, environ_base={"REMOTE_ADDR": PROXY},
                           headers={"X-Forwarded-For": xff}, unlock_code=code)


def test_a_strangers_guesses_from_one_address_do_not_lock_the_admin_out_from_hers(proxied, caplog):
    with caplog.at_level(logging.WARNING, logger="ivr.ops.console"):
        codes = [attempt(proxied, "203.0.113.7", f"guess {n}", forged=f"198.51.100.{n}").status_code
                 for n in range(12)]
    assert codes == [401] * 5 + [429] * 7  # the forged first hop changes nothing: the proxy's entry counts
    assert "from 203.0.113.7" in caplog.text and PROXY not in caplog.text
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 303
    hotline = proxied.extensions["ivr"]
    with hotline.db.read() as conn:
        rows = conn.execute(select(AuditEntry.action, AuditEntry.actor, AuditEntry.to_value)
                            .where(AuditEntry.action.like("console.sign_in%")).order_by(AuditEntry.id)).all()
    assert [tuple(r) for r in rows] == [
        ("console.sign_in_throttled", "console from 203.0.113.7", "too many failed sign-ins"),
        ("console.sign_in", "ada", "from 198.51.100.20")]


def pass_time(hotline, seconds: int) -> None:
    """Move every recorded failure back in time (SQLite cannot subtract from a stored date itself)."""
    with hotline.db.write() as conn:
        for row_id, at in conn.execute(select(LoginFailure.id, LoginFailure.at)).all():
            conn.execute(update(LoginFailure).where(LoginFailure.id == row_id)
                         .values(at=at - timedelta(seconds=seconds)))


def guess_from(app, addresses, rounds: int = 1) -> None:
    """Five wrong passwords from each address (all one address may try in a quarter hour), `rounds` times,
    a quarter hour apart (the name's back-off, a quarter hour at most, is over by the next round)."""
    for n in range(rounds):
        if n:
            pass_time(app.extensions["ivr"], 16 * 60)
        for addr in addresses:
            assert [attempt(app, addr, "guess").status_code for _ in range(5)] == [401] * 5


def test_guesses_from_120_addresses_are_slowed_never_stopped(proxied):
    codes = [attempt(proxied, f"192.0.2.{n}" if n < 100 else f"198.18.0.{n}", f"guess {n}").status_code
             for n in range(120)]
    assert codes[:20] == [401] * 20  # passwords are checked for the first twenty addresses...
    assert codes[20:] == [429] * 100  # ...then the name backs off: 30 s, a minute, two, ... a quarter hour
    refused = attempt(proxied, "198.51.100.20", PASSWORD)  # a new address: the admin too, for now
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 60  # or the address's window
    assert re.search(r"Try again in ([12]?[0-9]|30) s\b", refused.get_data(as_text=True))  # answered at once
    hotline = proxied.extensions["ivr"]
    for waited, then in ((31, [401, 429]), (31, [429]), (61, [401, 429])):  # 30 s, then a minute
        pass_time(hotline, waited)
        assert [attempt(proxied, "198.18.1.1", "guess").status_code for _ in then] == then


def test_ten_wrong_passwords_from_each_of_two_addresses_leave_her_own_address_open(proxied):
    """Before: this locked her out, the right password from her own address refused (429)."""
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 303  # her office, last week
    guess_from(proxied, ["203.0.113.7", "203.0.113.8"], rounds=2)
    assert attempt(proxied, "203.0.113.9", "guess").status_code == 429  # strangers' new addresses are slowed
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 303


def test_after_guesses_from_ten_addresses_an_unlock_code_lets_her_in_from_anywhere(proxied):
    """Before: 100 failures from ten addresses locked the name for 24 h, and `ivr users unlock` (forgetting
    the failures) was undone by the next round of guesses."""
    from ivr.store.sign_in_passes import create_unlock_code

    from ivr.ops.console.auth import record_failure

    hotline = proxied.extensions["ivr"]
    strangers = [f"203.0.113.{n}" for n in range(10)]
    for _ in range(10):  # ten wrong passwords from each of ten addresses, over some hours
        for addr in strangers:
            record_failure(hotline.db, "ada", addr)
    refused = attempt(proxied, "198.51.100.20", PASSWORD)  # her laptop at home: a new address
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 15 * 60  # slowed, not a day
    code = create_unlock_code(hotline.db, "ada", actor="ciso", reason="attack on ada")
    pass_time(hotline, 16 * 60)
    assert attempt(proxied, strangers[0], "guess").status_code == 401  # the attack goes on...
    assert [attempt(proxied, addr, "guess").status_code for addr in strangers[1:4]] == [429] * 3
    assert attempt(proxied, "198.51.100.20", PASSWORD, code="nope-nope-nope").status_code == 429
    assert attempt(proxied, "198.51.100.20", "typo", code=code.lower()).status_code == 401  # mistyped password
    assert attempt(proxied, "198.51.100.20", PASSWORD, code=code.lower()).status_code == 303
    assert attempt(proxied, "198.51.100.21", PASSWORD, code=code).status_code == 429  # used once, gone
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 303  # and her home is now known
    with hotline.db.read() as conn:
        stored = conn.execute(select(SignInPass.secret_hash)).scalars().all()
        actions = conn.execute(select(AuditEntry.action, AuditEntry.to_value).where(
            AuditEntry.action.in_(["console.unlock_code", "console.sign_in"])).order_by(AuditEntry.id)).all()
    assert code not in str(stored) and code.replace("-", "") not in str(stored)
    assert [tuple(a) for a in actions] == [
        ("console.unlock_code", "one-time sign-in code, valid 30 min"),
        ("console.sign_in", "from 198.51.100.20 with an unlock code"), ("console.sign_in", "from 198.51.100.20")]


def test_without_trusted_proxies_x_forwarded_for_is_not_believed(config, hotline):
    from ivr.app import create_app

    with hotline.db.write() as conn:
        conn.execute(insert(User).values(name="ada", role="admin", active=True, created_at=utcnow(),
                                         password_hash=generate_password_hash(PASSWORD, "pbkdf2:sha256:1000")))
    app = create_app(config)  # IVR_TRUSTED_PROXIES=0, the default
    try:
        codes = [console_sign_in(app.test_client(), "ada", "guess", environ_base={"REMOTE_ADDR": "203.0.113.7"},
                                 headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code for n in range(6)]
    finally:
        app.extensions["ivr"].close()
    assert codes == [401] * 5 + [429]  # six "addresses" in the header are one client


def test_one_address_trying_many_names_is_stopped_across_names_and_workers(proxied, config):
    """A flood of made-up names from one address: after ten failed tries it gets 429 without a password
    being checked, whatever the name, also from a second app (another worker: the count is shared); another
    address and a correct password from before are unaffected."""
    from ivr.app import create_app

    def try_name(app, addr, name, password="guess"):
        return console_sign_in(app.test_client(), name, password, environ_base={"REMOTE_ADDR": PROXY},
                               headers={"X-Forwarded-For": addr})

    assert try_name(proxied, "203.0.113.9", "ada", PASSWORD).status_code == 303  # a success is not counted
    codes = [try_name(proxied, "203.0.113.9", f"name{n}").status_code for n in range(10)]
    assert codes == [401] * 10
    other_worker = create_app(config.with_overrides(trusted_proxies=1))
    try:
        refused = try_name(other_worker, "203.0.113.9", "somebody-new")
        assert refused.status_code == 429 and "from your address" in refused.get_data(as_text=True)
        assert int(refused.headers["Retry-After"]) > 0
        assert try_name(other_worker, "198.51.100.30", "ada", PASSWORD).status_code == 303
    finally:
        other_worker.extensions["ivr"].close()
    hotline = proxied.extensions["ivr"]
    from ivr.store.sign_in_passes import create_unlock_code

    code = create_unlock_code(hotline.db, "ada", actor="ciso", reason="she shares the stranger's address")
    assert try_name(proxied, "203.0.113.9", "ada", "wrong").status_code == 429
    assert console_sign_in(proxied.test_client(), "ada", PASSWORD, unlock_code=code, environ_base={
        "REMOTE_ADDR": PROXY}, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 303  # past this limit too
    with hotline.db.read() as conn:  # the refused try reached neither the password check nor the database
        assert conn.execute(select(LoginFailure.id).where(LoginFailure.user_name == "somebody-new")).first() is None
