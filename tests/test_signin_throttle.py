"""Console sign-in behind the HTTPS proxy: the client's address from X-Forwarded-For (trusted hops only),
throttling per name and address and per name across addresses, so strangers cannot lock an admin out."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from werkzeug.security import generate_password_hash

from helpers import console_sign_in
from ivr.store.models import AuditEntry, LoginFailure, User, utcnow

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


def attempt(app, client_addr: str, password: str, forged: str = ""):
    """A sign-in through the proxy, which appends the address it saw to whatever the client sent."""
    xff = f"{forged}, {client_addr}" if forged else client_addr
    return console_sign_in(app.test_client(), "ada", password, environ_base={"REMOTE_ADDR": PROXY},
                           headers={"X-Forwarded-For": xff})


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


def test_guesses_from_120_addresses_are_slowed_then_stopped(proxied):
    codes = [attempt(proxied, f"192.0.2.{n}" if n < 100 else f"198.18.0.{n}", f"guess {n}").status_code
             for n in range(120)]
    assert codes[:20] == [401] * 20  # passwords are checked for the first twenty addresses...
    assert codes[20:] == [429] * 100  # ...then the name backs off: 30 s, a minute, two, ... a quarter hour
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 429  # the admin too, for now
    hotline = proxied.extensions["ivr"]
    for waited, then in ((31, [401, 429]), (31, [429]), (61, [401, 429])):  # 30 s, then a minute
        with hotline.db.write() as conn:  # time passes (SQLite cannot subtract from a stored date itself)
            for row_id, at in conn.execute(select(LoginFailure.id, LoginFailure.at)).all():
                conn.execute(update(LoginFailure).where(LoginFailure.id == row_id)
                             .values(at=at - timedelta(seconds=waited)))
        assert [attempt(proxied, "198.18.1.1", "guess").status_code for _ in then] == then
    # After an attack the real admin need not wait: an operator forgets the failures (audited).
    from ivr.ops.console.auth import unlock

    assert unlock(hotline.db, "Ada", actor="ciso", reason="attack over") == 22
    assert attempt(proxied, "198.51.100.20", PASSWORD).status_code == 303


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
    with hotline.db.read() as conn:  # the refused try reached neither the password check nor the database
        assert conn.execute(select(LoginFailure.id).where(LoginFailure.user_name == "somebody-new")).first() is None
