"""What every `ivr` command shares: the configuration, the database, who is acting, common options, errors."""
from __future__ import annotations

import atexit
import getpass

import click

from ivr.config import ConfigError, finalize, from_env
from ivr.store.db import Database


def _config(serving: bool = False):
    """The configuration; only serving (and so simulating in-process) needs the Twilio token."""
    try:
        return finalize(from_env(), serving=serving)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


_DATABASES: dict[str, Database] = {}


def _database(url: str) -> Database:
    """One Database (and connection pool) per URL for this process, released at exit."""
    if url not in _DATABASES:
        if not _DATABASES:
            atexit.register(lambda: [d.dispose() for d in _DATABASES.values()])
        _DATABASES[url] = Database(url)
    return _DATABASES[url]


def _db() -> Database:
    return _database(_config().db_url)


def _whoami() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"



def _clear_errors(fn):
    """Turn the hotline's "cannot do that" errors into CLI errors (exit 1, a clear message, nothing changed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from ivr.core.errors import Refused

        try:
            return fn(*args, **kwargs)
        except Refused as exc:
            raise click.ClickException(f"{exc} (nothing was changed)") from None

    return wrapper


_by = click.option("--by", "actor", default=None, help="Who is making the change (default: your login).")
_reason = click.option("--reason", default="", help="Why: it goes into the audit log.")
_lang = click.option("--lang", default="en", show_default=True, help="Language code from routing_rules.yaml.")
_topic = click.option("--topic", default="main", show_default=True,
                      type=click.Choice(["main", "details", "advice"]), help="What it answers: the main message, "
                      "details (menu 1) or what to do (menu 2).")
