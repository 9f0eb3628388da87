"""Users: who may use the console, the API and the admin phone line; roles, deactivation, new passwords and
PINs, and API tokens with their last use and expiry, revoked in a click. Admins only; every change has a reason."""
from __future__ import annotations

from datetime import timedelta

from flask import render_template, request

from ivr.ops.console.base import FormError, actor, bp, done, hotline, log, needs, reason, refused
from ivr.store import users
from ivr.store.models import utcnow

TOKEN_LIFETIMES = {"7": timedelta(days=7), "30": timedelta(days=30), "90": timedelta(days=90), "never": None}
REFUSED = (FormError, users.UserError)


def _page(status: int = 200, error: str | None = None, form_name: str | None = None, new_token: str | None = None):
    db = hotline().db
    return render_template("console/users.html", rows=users.list_users(db), tokens=users.list_tokens(db),
                           roles=users.ROLES, lifetimes=TOKEN_LIFETIMES, now=utcnow(), error=error,
                           form_name=form_name, form=request.form, new_token=new_token), status


def _name(user_id: int) -> str:
    found = next((u["name"] for u in users.list_users(hotline().db) if u["id"] == user_id), None)
    if found is None:
        raise FormError(f"there is no user {user_id}")
    return found


def _not_yourself(name: str, what: str) -> None:
    if name == actor():
        raise FormError(f"you cannot {what} yourself: ask another admin, so the hotline is never left without one")


def _refused(exc: Exception, form_name: str):
    return refused(_page, exc, form_name)


def _change(user_id: int, form_name: str, make) -> object:
    """Carry out `make(name, form)` (which returns what to tell the admin) on one user, or refuse it whole."""
    try:
        message = make(_name(user_id), request.form)
    except REFUSED as exc:
        return _refused(exc, f"{form_name}-{user_id}")
    return done("console.users_page", message)


@bp.get("/users")
@needs("manage users")
def users_page():
    return _page()


@bp.post("/users")
@needs("manage users")
def user_add():
    form = request.form
    try:
        why = reason(form)
        name = (form.get("name") or "").strip()
        users.add_user(hotline().db, name, form.get("role", ""), actor=actor(), reason=why,
                       password=form.get("password") or None, phone_pin=form.get("pin") or None)
    except REFUSED as exc:
        return _refused(exc, "add")
    return done("console.users_page", f"User {name} was added with the {form.get('role')} role.")


# The changes of one thing about a user: the store's function for it, and what the admin is told.
SETTINGS = {
    "role": (users.set_role, "{name} now has the {value} role (signed out, so it holds from their next page)."),
    "password": (users.reset_password, "{name} has a new password; their open sessions were ended."),
    "pin": (users.reset_phone_pin, "{name} has a new phone PIN."),
}


@bp.post("/users/<int:user_id>/role", endpoint="user_role", defaults={"setting": "role"})
@bp.post("/users/<int:user_id>/password", endpoint="user_password", defaults={"setting": "password"})
@bp.post("/users/<int:user_id>/pin", endpoint="user_pin", defaults={"setting": "pin"})
@needs("manage users")
def user_set(user_id: int, setting: str):
    """A new role, console password or phone PIN, from the form field of that name."""
    store, told = SETTINGS[setting]

    def make(name, form):
        if setting == "role":
            _not_yourself(name, "change the role of")
        value = form.get(setting, "")
        store(hotline().db, name, value, actor=actor(), reason=reason(form))
        return told.format(name=name, value=value)

    return _change(user_id, setting, make)


@bp.post("/users/<int:user_id>/active")
@needs("manage users")
def user_active(user_id: int):
    """Deactivate (sessions, tokens and phone PIN end at once) or reactivate a user."""
    def make(name, form):
        if form.get("active") == "no":
            _not_yourself(name, "deactivate")
            users.deactivate_user(hotline().db, name, actor=actor(), reason=reason(form))
            return f"{name} is deactivated: signed out, API tokens revoked, phone PIN refused."
        users.reactivate_user(hotline().db, name, actor=actor(), reason=reason(form))
        return f"{name} is active again (old API tokens stay revoked)."

    return _change(user_id, "active", make)


@bp.post("/users/<int:user_id>/tokens")
@needs("manage users")
def token_create(user_id: int):
    """A new API token, shown on this page once (never stored, never put in a cookie)."""
    form = request.form
    try:
        name, label = _name(user_id), (form.get("label") or "").strip()
        if not label:
            raise FormError("say what the token is for (kept in the audit log)")
        if form.get("expires") not in TOKEN_LIFETIMES:
            raise FormError("choose how long the token lasts")
        token = users.create_token(hotline().db, name, actor=actor(), expires=TOKEN_LIFETIMES[form["expires"]],
                                   label=label[:120])
    except REFUSED as exc:
        return _refused(exc, f"token-{user_id}")
    log.info("console: %s made an API token for %s", actor(), name)
    return _page(new_token=token)


@bp.post("/tokens/revoke")
@needs("manage users")
def token_revoke():
    form = request.form
    try:
        token_id = form.get("token_id", "")
        if not token_id.isdigit() or len(token_id) > 18:
            raise FormError("choose a token to revoke")
        owner = users.revoke_token(hotline().db, int(token_id), actor=actor(), reason=reason(form))
    except REFUSED as exc:
        return _refused(exc, "revoke")
    return done("console.users_page", f"Token {token_id} of {owner} is revoked: it is refused from now on.")
