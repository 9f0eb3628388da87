"""What every `ivr` command shares: the configuration, the database and who is acting (each resolved once per
command), the common options, and how a refusal or an unavailable database is reported."""
from __future__ import annotations

import atexit
import functools
import getpass

import click
from sqlalchemy import exc as sa_exc

from ivr.config import Config, ConfigError, finalize, from_env
from ivr.core.errors import Refused
from ivr.store.db import Database
from ivr.store.models import TOPICS

_DATABASES: dict[str, Database] = {}


def _database(url: str, timeouts) -> Database:
    """One Database (and connection pool) per URL for this process, released at exit. Its connections are
    checked before use: a command is no webhook, and one kept across a database restart (a process that runs
    several commands) would otherwise fail its first statement."""
    if url not in _DATABASES:
        if not _DATABASES:
            atexit.register(lambda: [d.dispose() for d in _DATABASES.values()])
        _DATABASES[url] = Database(url, timeouts, pre_ping=True)
    return _DATABASES[url]


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class CliContext:
    """The command's view of the install, each part resolved on first use and then kept."""

    def __init__(self):
        self.by: str | None = None  # --by, set by the option's callback before the command runs
        self._settings: Config | None = None
        self._configs: dict[bool, Config] = {}

    @property
    def settings(self) -> Config:
        """The environment's settings as given, nothing derived or created (enough to read the rules file)."""
        if self._settings is None:
            self._settings = self._resolve(from_env)
        return self._settings

    @property
    def config(self) -> Config:
        """The configuration for admin commands: no Twilio token needed."""
        return self._finalized(serving=False)

    @property
    def serving_config(self) -> Config:
        """The configuration to serve with: refused without a Twilio token outside development."""
        return self._finalized(serving=True)

    @property
    def db(self) -> Database:
        from ivr.store import sealed

        cfg = self.config
        sealed.use(cfg.db_url, cfg.instance_path, cfg.data_keys)  # where the numbers' keys are
        return _database(cfg.db_url, cfg.db_timeouts(background=True))

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log: --by, else the login."""
        return self.by or _login()

    def _finalized(self, serving: bool) -> Config:
        if serving not in self._configs:
            self._configs[serving] = self._resolve(lambda: finalize(self.settings, serving=serving))
        return self._configs[serving]

    @staticmethod
    def _resolve(make):
        try:
            return make()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None


pass_cli = click.make_pass_decorator(CliContext, ensure=True)

# SQLSTATE classes that mean "the database cannot be used now", not "this statement is wrong": connection
# failures (08), read-only transactions (25006), operator intervention and shutdown (57), resources (53).
_UNAVAILABLE_SQLSTATES = ("08", "25006", "57", "53")


def database_unavailable(exc: Exception) -> str | None:
    """The one sentence every command prints when the database cannot be reached or written, or None when
    `exc` is not that (a bug, a constraint): those keep their traceback."""
    if isinstance(exc, sa_exc.TimeoutError):
        why = "no connection was free in time"
    elif isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if not (isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or exc.connection_invalidated
                or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)):
            return None
        why = (str(exc.orig).strip().splitlines() or ["no reason given"])[0][:160]
    else:
        return None
    return (f"The database is unavailable ({why}): check that it is running and writable and that "
            f"DATABASE_URL points at it, then run the command again; nothing was changed.")


class HotlineGroup(click.Group):
    """The `ivr` group: a database that is down or read-only ends any command with one sentence and exit 1,
    never a traceback (commands need no handling of their own)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            sentence = database_unavailable(exc)
            if sentence is None:
                raise
            raise click.ClickException(sentence) from None


def refusals_as_errors(fn):
    """Turn the hotline's "cannot do that" errors into CLI errors (exit 1, a clear message, nothing changed)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Refused as exc:
            raise click.ClickException(f"{exc} (nothing was changed)") from None

    return wrapper


def _set_by(ctx: click.Context, _param, value):
    if value is not None:
        ctx.ensure_object(CliContext).by = value


by_option = click.option("--by", default=None, expose_value=False, callback=_set_by,
                         help="Who is making the change (default: your login).")


def _reason(required: bool):
    return click.option("--reason", required=required, default=None if required else "",
                        help="Why: it goes into the audit log.")


reason_option = _reason(required=False)
required_reason_option = _reason(required=True)
lang_option = click.option("--lang", default="en", show_default=True, help="Language code from routing_rules.yaml.")
topic_option = click.option("--topic", default="main", show_default=True,
                            type=click.Choice(TOPICS), help="What it answers: the main "
                            "message, details (menu 1) or what to do (menu 2).")


def change(reason: str | None = "optional"):
    """A command that changes something: --reason ("required", "optional" or None), --by, refusals as clear
    errors, and the context object as its first argument."""
    decorators = [d for d in (_reason(required=reason == "required") if reason else None, by_option,
                              refusals_as_errors, pass_cli) if d]

    def decorate(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return decorate
