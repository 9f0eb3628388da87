"""Console sign-in: passwords from the users table, throttling kept in the database, sessions with an expiry.

The cookie holds only a random session id; the session itself lives in `console_sessions`, so signing out
or expiring really ends it, on every worker and every server.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta, timezone
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, request, session, url_for
from sqlalchemy import delete, func, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ivr.ops.console import csrf
from ivr.store.db import Database
from ivr.store.models import ConsoleSession, LoginFailure, User, utcnow
from ivr.store.sign_in_passes import account_key, known_address, remember_address

MAX_FAILURES = 5  # from one address for one name in FAILURE_WINDOW
FAILURE_WINDOW = timedelta(minutes=15)
NAME_WINDOW = timedelta(hours=24)  # failures for a name from every address are counted this long
PER_ADDRESS_CAP = 10  # one address adds at most this many to its name's count: it cannot lock others out
NAME_FREE = 20  # counted failures before the name's back-off starts
NAME_MAX = 100  # failures from one address at one name before that address waits a day (NIST 800-63B)
ATTACK_WINDOW = timedelta(hours=1)  # an account is "under attack" while NAME_FREE counted failures are this recent
SLIDE_STEP = timedelta(minutes=1)  # a session's expiry is written at most once a minute


@dataclass(frozen=True)
class ConsoleUser:
    id: int
    name: str
    role: str


def _hotline_db() -> Database:
    return current_app.extensions["ivr"].db


def _id_hash(sid: str) -> str:
    # The id is 256 random bits: a plain hash keeps a database leak from handing out live sessions.
    return hashlib.sha256(sid.encode()).hexdigest()


def current_user() -> ConsoleUser | None:
    """The user signed in with this request's cookie, if the session is still open and the user active.

    A session slides with activity: each page or change moves its expiry to a full lifetime from now (at most
    once a minute, and never past the absolute limit). The dashboard's own refresh is not activity, so a
    screen left open still expires.
    """
    sid = session.get("sid")
    if not sid:
        return None
    now = utcnow()
    with _hotline_db().read() as conn:
        row = conn.execute(select(User.id, User.name, User.role, ConsoleSession.created_at, ConsoleSession.expires_at)
                           .join(ConsoleSession, ConsoleSession.user_id == User.id)
                           .where(ConsoleSession.id_hash == _id_hash(sid), ConsoleSession.expires_at > now,
                                  User.active.is_(True))).first()
    if row is None:
        session.pop("sid", None)
        g.session_expired = True
        return None
    if request.endpoint != "console.live":
        _slide(sid, _aware(row.created_at), _aware(row.expires_at), now)
    return ConsoleUser(row.id, row.name, row.role)


def _aware(ts):
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)  # SQLite hands times back without a zone


def _slide(sid: str, created, expires, now) -> None:
    config = current_app.config
    new = min(now + config["CONSOLE_SESSION_LIFETIME"], created + config["CONSOLE_SESSION_MAX"])
    if new - expires >= SLIDE_STEP:
        with _hotline_db().write() as conn:
            conn.execute(update(ConsoleSession).where(ConsoleSession.id_hash == _id_hash(sid))
                         .values(expires_at=new))


PENDING_SWITCH = "pending_switch"
PENDING_CALLBACK_DONE = "pending_callback_done"
PENDING = (PENDING_SWITCH, PENDING_CALLBACK_DONE)  # kept across the sign-in, offered again once


def to_login():
    """Send an anonymous request to the sign-in page, coming back here afterwards if it was a page.

    A change sent with an expired session is not made, and the sign-in page says so plainly; what was typed
    for a mode switch or a callback's "Mark done" is kept (in the signed cookie) so its page can offer it
    again after sign-in.
    """
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    if g.get("session_expired"):
        if request.method == "GET":
            flash("Your session has expired. Please sign in again.", "error")
        else:
            flash("Your session had expired, so what you just sent was not done: nothing was changed. "
                  "Sign in and do it again.", "error")
            target = urlsplit(request.referrer or "").path or None
            if request.endpoint == "console.mode" and csrf.valid():
                session[PENDING_SWITCH] = {"mode": request.form.get("mode", "")[:16],
                                           "reason": request.form.get("reason", "")[:500]}
                target = url_for("console.dashboard")
            if request.endpoint == "console.callback_done" and csrf.valid():
                session[PENDING_CALLBACK_DONE] = {"id": request.view_args["callback_id"],
                                                  "note": request.form.get("note", "")[:1000],
                                                  "reason": request.form.get("reason", "")[:500]}
                target = url_for("console.callbacks_page")
    return redirect(url_for("console.login", next=target), 303)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    parts = urlsplit(target or "")
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/") or "\\" in (target or ""):
        return url_for("console.dashboard")
    return target


def _throttle_key(name: str, ip: str) -> tuple[str, str]:
    return account_key(name), (ip or "unknown")[:64]


def _name_backoff(counted: int) -> timedelta:
    """How long a name waits after its latest failure, once failures from everywhere add up: 30 s at
    NAME_FREE, doubling to FAILURE_WINDOW and never longer (about four tries an hour from strangers' addresses):
    it slows guessing and never locks the account; her own addresses and unlock codes go past it."""
    if counted < NAME_FREE:
        return timedelta(0)
    return min(FAILURE_WINDOW, timedelta(seconds=30 * 2 ** min(counted - NAME_FREE, 10)))


def _failures_by_address(conn, user_name: str, since) -> list:
    return conn.execute(select(LoginFailure.ip, func.count(), func.max(LoginFailure.at)).where(
        LoginFailure.user_name == user_name, LoginFailure.at > since).group_by(LoginFailure.ip)).all()


def _counted(rows) -> int:
    return sum(min(n, PER_ADDRESS_CAP) for _, n, _ in rows)


def throttled(db: Database, name: str, ip: str) -> timedelta:
    """How long this name must wait before trying from this address (zero: it may try now).

    Per (name, address): MAX_FAILURES in FAILURE_WINDOW, then that address waits out the window (NAME_MAX
    from one address: a day). Per name across addresses, each counting for at most PER_ADDRESS_CAP: guesses
    spread over many addresses are slowed (_name_backoff), never stopped. That account-wide back-off does not
    apply to an address the account signed in from before: a stranger cannot send from her address, so he
    cannot aim it at her (from a new address she asks for an unlock code: `ivr users unlock`).
    """
    user_name, ip = _throttle_key(name, ip)
    now = utcnow()
    with db.read() as conn:
        rows = _failures_by_address(conn, user_name, now - NAME_WINDOW)
        here = conn.execute(select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.user_name == user_name, LoginFailure.ip == ip,
            LoginFailure.at > now - FAILURE_WINDOW)).one()
    waits = [timedelta(0)]
    if here[0] >= MAX_FAILURES:
        waits.append(here[1] + FAILURE_WINDOW - now)
    for addr, n, at in rows:
        if addr == ip and n >= NAME_MAX:  # this address alone has had its hundred tries at this name
            waits.append(at + NAME_WINDOW - now)
    counted = _counted(rows)
    if counted >= NAME_FREE and not known_address(db, user_name, ip):
        waits.append(max(at for _, _, at in rows) + _name_backoff(counted) - now)
    return max(waits)


def under_attack(db: Database, name: str) -> bool:
    """Whether failures at this name from everywhere in the last ATTACK_WINDOW reach the account-wide budget."""
    with db.read() as conn:
        return _counted(_failures_by_address(conn, account_key(name), utcnow() - ATTACK_WINDOW)) >= NAME_FREE


def accounts_under_attack(db: Database) -> list[str]:
    """The users whose account-wide budget is used up now. Only real names: made-up names (or a password typed
    into the name field) attack no account, and are never shown on the dashboard."""
    with db.read() as conn:
        rows = conn.execute(select(LoginFailure.user_name, LoginFailure.ip, func.count()).where(
            LoginFailure.at > utcnow() - ATTACK_WINDOW).group_by(LoginFailure.user_name, LoginFailure.ip)).all()
        names = {account_key(name): name for name in conn.execute(select(User.name)).scalars()}
    counted: dict[str, int] = {}
    for user_name, _, n in rows:
        counted[user_name] = counted.get(user_name, 0) + min(n, PER_ADDRESS_CAP)
    return sorted(names[key] for key, n in counted.items() if n >= NAME_FREE and key in names)


def record_failure(db: Database, name: str, ip: str) -> None:
    user_name, ip = _throttle_key(name, ip)
    with db.write() as conn:
        conn.execute(insert(LoginFailure).values(user_name=user_name, ip=ip, at=utcnow()))


def check_password(db: Database, name: str, password: str) -> ConsoleUser | None:
    """The active user with this name and password, or None (taking as long when the name is unknown)."""
    with db.read() as conn:
        row = conn.execute(select(User.id, User.name, User.role, User.password_hash)
                           .where(User.name == name.strip(), User.active.is_(True))).first()
    if row is None or not row.password_hash:
        check_password_hash(_stand_in_hash(), password)  # same cost as a real check: the timing reveals no names
        return None
    return ConsoleUser(row.id, row.name, row.role) if check_password_hash(row.password_hash, password) else None


@functools.cache
def _stand_in_hash() -> str:
    """A hash of a random password, checked when the name is unknown or has no password."""
    return generate_password_hash(secrets.token_hex(8))


def sign_in(db: Database, user: ConsoleUser, ip: str, spend=None) -> bool:
    """Open a server-side session for this user and put only its id in the cookie; remember the address.

    `spend(conn)`, in the same transaction, spends an unlock code: if it returns False (spent by another
    request a moment ago) nobody is signed in and this returns False."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    user_name, ip = _throttle_key(user.name, ip)
    with db.write() as conn:
        if spend is not None and not spend(conn):
            return False
        conn.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
        # Old failures anywhere, and this user's from this address: a success clears the slate.
        conn.execute(delete(LoginFailure).where((LoginFailure.at <= now - NAME_WINDOW) | (
            (LoginFailure.user_name == user_name) & (LoginFailure.ip == ip))))
        conn.execute(insert(ConsoleSession).values(
            id_hash=_id_hash(sid), user_id=user.id, created_at=now,
            expires_at=now + current_app.config["CONSOLE_SESSION_LIFETIME"]))
        remember_address(conn, user_name, ip)
    pending = {key: session[key] for key in PENDING if key in session}
    session.clear()
    session.permanent = True
    session["sid"] = sid
    session.update(pending)
    csrf.renew()
    return True


def sign_out(db: Database) -> None:
    sid = session.get("sid")
    if sid:
        with db.write() as conn:
            conn.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _id_hash(sid)))
    session.clear()
