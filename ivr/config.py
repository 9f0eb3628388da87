"""Configuration: every setting the hotline reads from the environment, in one place."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


OFF = ("0", "false", "no", "off")


class ConfigError(RuntimeError):
    """The configuration cannot run a hotline (e.g. no Twilio token outside development)."""


@dataclass(frozen=True)
class Config:
    env: str = "production"  # "development" allows a generated local Twilio token
    instance_path: Path = PROJECT_ROOT / "instance"
    database_url: str = ""  # empty: SQLite in the instance folder
    twilio_auth_token: str = ""
    twilio_account_sid: str = ""
    public_url: str = ""  # the base URL Twilio calls, e.g. https://hotline.example.com
    rules_path: Path = PROJECT_ROOT / "routing_rules.yaml"
    secret_key: str = ""
    data_keys: str = ""  # IVR_DATA_KEY: Fernet keys for numbers at rest, newest first (else instance/data.key)
    max_body_bytes: int = 64 * 1024
    validate_signatures: bool = True
    # Seconds between two batches of call records. Larger batches cost less per record, but each batch is
    # a burst of CPU that webhooks queue behind: shorter bursts, a shorter tail (docs/performance.md).
    event_flush_interval: float = 0.1
    media_cache_dir: Path = PROJECT_ROOT / "audio" / "cache"  # rebuilt from the database on demand
    tts_engines: tuple[str, ...] = ("gtts", "espeak")
    gtts_timeout: float = 3.0  # seconds before giving up on Google and speaking offline
    upload_max_bytes: int = 20_000_000
    audio_max_seconds: float = 300.0
    # Where phone recordings may be fetched from (scheme://host[:port]); nothing else, so no SSRF.
    recording_origins: tuple[str, ...] = ("https://api.twilio.com",)
    # Staff phone lines (admin, agent): wrong PINs within the window lock one caller ID, or the whole line.
    pin_caller_limit: int = 5
    pin_line_limit: int = 50
    pin_window_minutes: int = 15
    pin_lock_minutes: int = 15
    # A new statement is a draft until a second person approves it (ivr/store/approvals.py); admins may
    # override with a reason. On unless IVR_TWO_PERSON_PUBLISHING=0 (docs/configuration.md).
    two_person_publishing: bool = True
    admin_line_own_numbers: bool = False  # the admin line takes an admin's PIN only from her own caller ID
    trusted_proxies: int = 0  # hops of X-Forwarded-For to believe (the HTTPS proxy in front of us)
    metrics_token: str = ""  # when set, /metrics wants "Authorization: Bearer <token>"
    # Where sign-in attempts per address are counted (flask-limiter / limits storage URI, e.g. redis://host:6379
    # to share the count across servers); empty: a SQLite file in the instance folder (ivr/ops/console/sign_in_limit.py).
    rate_limit_storage: str = ""
    sms_from: str = ""  # the Twilio number SMS follow-ups are sent from
    hotline_number: str = ""  # the caller ID of callbacks (empty: the number the agent called)
    callback_retention_days: int = 7  # what is left of callbacks (voicemail link, notes) goes after this
    housekeeping_seconds: float = 600.0  # how often `ivr background` applies the retention
    notice_url: str = ""  # the public breach notice the SMS links to
    # Breach-notice campaigns (docs/notify.md): sent through this Messaging Service, else from sms_from;
    # finished once nothing is left to send and no delivery report came for this long.
    messaging_service_sid: str = ""
    notice_settle_seconds: float = 600.0
    notice_threads: int = 8  # REST calls in flight at once (the configured rate still bounds them)
    twilio_api_url: str = ""  # a stand-in for https://api.twilio.com (tests, staging); empty: Twilio itself
    jobs_in_app: bool = True  # work background jobs in a thread of each web worker (else: `ivr jobs run`)
    job_lease_seconds: float = 60.0  # a claimed job is its runner's this long, renewed while it runs
    # "thread": each process writes its spooled events itself; "process": workers only append to the spool
    # and `ivr background` (started by `ivr serve`) writes it; see ivr/spool/.
    event_writer: str = "thread"
    # A full spool disk (ivr/spool/appender.py): disk kept allocated ahead of each worker's segment, then
    # records held in a worker's memory up to this; past both, records are lost and counted.
    spool_reserve_bytes: int = 1 << 20
    spool_memory_bytes: int = 16 << 20
    spool_backlog_alert_s: float = 60.0  # /healthz is degraded when a record waits longer than this
    background_nice: int = 10  # how far below the web workers `ivr background` runs (ivr/worker/background.py)
    log_format: str = "text"  # "json": one JSON object per line from every process of `ivr serve`
    # The hotline's own time zone: a scheduled change given without an offset ("2026-12-07T08:00") is at that
    # hour there (ivr/store/scheduled.py). Only for reading times: the database and the console keep UTC.
    timezone: str = "UTC"
    queue_reconcile_s: float = 60.0  # how often `ivr background` closes queue entries long past their maximum
    # PostgreSQL statement_timeout / lock_timeout (ms) of the web workers' connections, and of `ivr background`'s
    # and the CLI's (ivr/store/db.py).
    db_statement_timeout_ms: int = 5000
    db_lock_timeout_ms: int = 1000
    background_statement_timeout_ms: int = 30000
    background_lock_timeout_ms: int = 5000
    # Where the auth token came from: "environment", "config", "development-file"
    token_source: str = field(default="config", compare=False)

    @property
    def dev(self) -> bool:
        return self.env == "development"

    @property
    def sqlite_default_url(self) -> str:
        return f"sqlite:///{self.instance_path / 'hotline.db'}"

    @property
    def db_url(self) -> str:
        return self.database_url or self.sqlite_default_url

    @property
    def spool_dir(self) -> Path:
        return self.instance_path / "spool"

    def db_timeouts(self, background: bool = False):
        """The PostgreSQL timeouts of a web worker's connections, or of `ivr background`'s and the CLI's."""
        from ivr.store.db import DbTimeouts

        if background:
            return DbTimeouts(self.background_statement_timeout_ms, self.background_lock_timeout_ms)
        return DbTimeouts(self.db_statement_timeout_ms, self.db_lock_timeout_ms)

    def with_overrides(self, **kw) -> "Config":
        return replace(self, **kw)


def from_env(environ: dict[str, str] | None = None) -> Config:
    """Read the configuration from the environment (the only place that does)."""
    env = os.environ if environ is None else environ
    instance = Path(env.get("IVR_INSTANCE_PATH") or PROJECT_ROOT / "instance")
    cfg = Config(
        env=env.get("IVR_ENV", "production"),
        instance_path=instance,
        database_url=env.get("DATABASE_URL", ""),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
        public_url=env.get("IVR_PUBLIC_URL", "").rstrip("/"),
        rules_path=Path(env.get("IVR_RULES") or PROJECT_ROOT / "routing_rules.yaml"),
        secret_key=env.get("IVR_SECRET_KEY", ""),
        data_keys=env.get("IVR_DATA_KEY", ""),
        max_body_bytes=int(env.get("IVR_MAX_BODY_BYTES", 64 * 1024)),
        media_cache_dir=Path(env.get("IVR_MEDIA_CACHE") or PROJECT_ROOT / "audio" / "cache"),
        tts_engines=tuple(e.strip() for e in env.get("IVR_TTS_ENGINES", "gtts,espeak").split(",") if e.strip()),
        gtts_timeout=float(env.get("IVR_GTTS_TIMEOUT", 3.0)),
        upload_max_bytes=int(env.get("IVR_UPLOAD_MAX_BYTES", 20_000_000)),
        audio_max_seconds=float(env.get("IVR_AUDIO_MAX_SECONDS", 300)),
        recording_origins=tuple(o.strip().rstrip("/") for o in
                                env.get("IVR_RECORDING_ORIGINS", "https://api.twilio.com").split(",") if o.strip()),
        jobs_in_app=env.get("IVR_JOBS_IN_APP", "1") not in ("0", "false", "no"),
        job_lease_seconds=float(env.get("IVR_JOB_LEASE_SECONDS", 60) or 60),
        event_writer=env.get("IVR_EVENT_WRITER", "thread"),
        event_flush_interval=float(env.get("IVR_EVENT_FLUSH_INTERVAL", 0.1)),
        background_nice=int(env.get("IVR_BACKGROUND_NICE", "10") or 0),
        spool_reserve_bytes=int(env.get("IVR_SPOOL_RESERVE_BYTES", 1 << 20)),
        spool_memory_bytes=int(env.get("IVR_SPOOL_MEMORY_BYTES", 16 << 20)),
        spool_backlog_alert_s=float(env.get("IVR_SPOOL_BACKLOG_ALERT_S", 60)),
        log_format=env.get("IVR_LOG_FORMAT", "text").strip().lower() or "text",
        trusted_proxies=int(env.get("IVR_TRUSTED_PROXIES", 0) or 0),
        pin_caller_limit=int(env.get("IVR_PIN_CALLER_LIMIT", 5)),
        pin_line_limit=int(env.get("IVR_PIN_LINE_LIMIT", 50)),
        pin_window_minutes=int(env.get("IVR_PIN_WINDOW_MINUTES", 15)),
        pin_lock_minutes=int(env.get("IVR_PIN_LOCK_MINUTES", 15)),
        two_person_publishing=env.get("IVR_TWO_PERSON_PUBLISHING", "1").strip().lower() not in OFF,
        admin_line_own_numbers=env.get("IVR_ADMIN_LINE_OWN_NUMBERS", "0") in ("1", "true", "yes"),
        metrics_token=env.get("IVR_METRICS_TOKEN", ""),
        rate_limit_storage=env.get("IVR_RATE_LIMIT_STORAGE", ""),
        timezone=env.get("IVR_TIMEZONE", "").strip() or "UTC",
        queue_reconcile_s=float(env.get("IVR_QUEUE_RECONCILE_S", "60") or 60),
        db_statement_timeout_ms=int(env.get("IVR_DB_STATEMENT_TIMEOUT_MS", "5000") or 0),
        db_lock_timeout_ms=int(env.get("IVR_DB_LOCK_TIMEOUT_MS", "1000") or 0),
        background_statement_timeout_ms=int(env.get("IVR_BACKGROUND_STATEMENT_TIMEOUT_MS", "30000") or 0),
        background_lock_timeout_ms=int(env.get("IVR_BACKGROUND_LOCK_TIMEOUT_MS", "5000") or 0),
        sms_from=env.get("TWILIO_SMS_FROM", ""),
        hotline_number=env.get("IVR_HOTLINE_NUMBER", ""),
        callback_retention_days=int(env.get("IVR_CALLBACK_RETENTION_DAYS", 7)),
        housekeeping_seconds=float(env.get("IVR_HOUSEKEEPING_SECONDS", 600)),
        notice_url=env.get("IVR_NOTICE_URL", ""),
        messaging_service_sid=env.get("TWILIO_MESSAGING_SERVICE_SID", ""),
        notice_settle_seconds=float(env.get("IVR_NOTICE_SETTLE_SECONDS", 600) or 0),
        notice_threads=int(env.get("IVR_NOTICE_THREADS", 8) or 1),
        twilio_api_url=env.get("IVR_TWILIO_API_URL", "").rstrip("/"),
        token_source="environment",
    )
    return cfg


def finalize(cfg: Config, serving: bool = True) -> Config:
    """Fill what can be derived; refuse to serve without a Twilio token outside development.

    `serving=False` (admin commands): no token is needed; a development token is used if one was made.
    """
    if cfg.log_format not in ("text", "json"):
        raise ConfigError(f"IVR_LOG_FORMAT is {cfg.log_format!r}: it must be text or json")
    try:
        ZoneInfo(cfg.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"IVR_TIMEZONE is {cfg.timezone!r}: use a time zone name like Europe/Paris or "
                          "America/New_York") from None
    if cfg.trusted_proxies < 0:
        raise ConfigError(f"IVR_TRUSTED_PROXIES is {cfg.trusted_proxies}: it counts proxies, 0 or more")
    if not cfg.twilio_auth_token and not serving and not cfg.dev:
        kept = cfg.instance_path / "dev_twilio_auth_token"
        if kept.exists():
            cfg = replace(cfg, twilio_auth_token=kept.read_text().strip(), token_source="development-file")
    if not cfg.twilio_auth_token:
        if not cfg.dev and serving:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set. The hotline refuses to start without it, because it could not "
                "tell Twilio's requests from forgeries. For a local trial set IVR_ENV=development (make run does)."
            )
        if cfg.dev:
            cfg = replace(cfg, twilio_auth_token=dev_token(cfg.instance_path), token_source="development-file")
    if not cfg.secret_key:
        cfg = replace(cfg, secret_key=_kept_secret(cfg.instance_path / "secret_key"))
    return cfg


def dev_token(instance_path: Path) -> str:
    """The local development Twilio token: made once, kept in the instance folder."""
    return _kept_secret(instance_path / "dev_twilio_auth_token", nbytes=16)


def _kept_secret(path: Path, nbytes: int = 32) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(nbytes)
    # Write aside, then link into place: two workers starting together agree on one complete value.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value
