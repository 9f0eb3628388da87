"""Configuration: every setting the hotline reads from the environment, in one place."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    max_body_bytes: int = 64 * 1024
    validate_signatures: bool = True
    event_flush_interval: float = 0.05
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
        max_body_bytes=int(env.get("IVR_MAX_BODY_BYTES", 64 * 1024)),
        token_source="environment",
    )
    return cfg


def finalize(cfg: Config) -> Config:
    """Fill what can be derived; refuse to run without a Twilio token outside development."""
    if not cfg.twilio_auth_token:
        if not cfg.dev:
            raise ConfigError(
                "TWILIO_AUTH_TOKEN is not set. The hotline refuses to start without it, because it could not "
                "tell Twilio's requests from forgeries. For a local trial set IVR_ENV=development (make run does)."
            )
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
