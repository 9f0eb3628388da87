"""Full phone numbers at rest: sealed with Fernet under data keys that are never in the database.

A number the hotline must keep for a while (an owed callback, a pending SMS job's `to`, an agent's phone) is
stored as a Fernet token (AES-128-CBC + HMAC-SHA256, from the `cryptography` package): a copied database
file or a backup without the key gives nothing away. Lookups that need equality use the keyed hash
(ivr/core/identity.py), never these tokens. The keys, newest first, come from IVR_DATA_KEY (comma-separated)
or from `data.key` in the instance folder (one a line, mode 0600, made by `ivr setup`). MultiFernet seals
under the newest and opens under any, so `ivr keys rotate` (ivr/store/key_rotation.py) can re-encrypt while
the older keys still read. Sealing and opening happen at the store boundary only; callers' webhooks never
need to open a number, so a missing or wrong key stops only the features that dial or text one.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ivr.core.errors import Refused

log = logging.getLogger(__name__)

KEY_FILE = "data.key"
ENV_VAR = "IVR_DATA_KEY"
TOKEN_START = "gAAAAA"  # every Fernet token (version byte 0x80, then the time) begins so; no number does


class DataKeyError(Refused):
    """No data key, or not the one a number was sealed under: the number cannot be sealed or opened."""


def fingerprint(key: str) -> str:
    """A short name for a key that gives nothing of it away (for status output and the audit log)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(TOKEN_START)


@dataclass
class Keyring:
    """The data keys this process holds (newest first), or why it holds none."""

    keys: tuple[str, ...] = ()
    source: str = ""  # "IVR_DATA_KEY" or the key file's path (for `ivr keys`, run on the server)
    problem: str = ""  # why there is no usable key; "" when there is
    # How messages that reach /healthz, the console and the API name the keys' source: never a server path.
    label: str = ""
    _multi: MultiFernet | None = field(default=None, repr=False)

    @classmethod
    def from_keys(cls, keys: list[str], source: str, label: str | None = None) -> "Keyring":
        label = label or source
        keys = [k.strip() for k in keys if k.strip() and not k.strip().startswith("#")]
        if not keys:
            return cls(source=source, problem=f"no data key in {label}", label=label)
        try:
            multi = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError):
            return cls(source=source, problem=f"{label} holds something that is not a Fernet key "
                                               "(32 url-safe base64-encoded bytes)", label=label)
        return cls(tuple(keys), source, "", label, multi)

    @property
    def usable(self) -> bool:
        return self._multi is not None

    def _fernet(self) -> MultiFernet:
        if self._multi is None:
            raise DataKeyError(f"no usable data key: {self.problem}. Numbers cannot be sealed or opened until "
                               f"it is back (set {ENV_VAR} or restore {KEY_FILE}; see docs/security.md)")
        return self._multi

    def seal(self, number: str) -> str:
        """The number as a token only these keys open; a token stays as it is."""
        if is_sealed(number):
            return number
        return self._fernet().encrypt(number.encode()).decode()

    def open(self, token: str) -> str:
        """The number a token holds. A number stored before sealing existed (not yet migrated) reads as is."""
        if not is_sealed(token):
            return token
        try:
            return self._fernet().decrypt(token.encode()).decode()
        except InvalidToken:
            raise DataKeyError(f"a stored number was sealed under a data key this server does not hold "
                               f"(keys from {self.label or self.source}: {', '.join(map(fingerprint, self.keys))}); was the "
                               f"key file lost or {ENV_VAR} changed? It waits until the right key is back") from None

    def sealer(self):
        """`seal` for many numbers known to be plain (planning a million recipients): the newest key's
        encrypt, looked up once (DataKeyError now if there is no usable key)."""
        encrypt = self._fernet().encrypt
        return lambda number: encrypt(number.encode()).decode()

    def rotate(self, token: str) -> str:
        """The token re-encrypted under the newest key (a plaintext number: sealed)."""
        return self._fernet().rotate(token.encode()).decode() if is_sealed(token) else self.seal(token)


def key_file(instance_path: Path) -> Path:
    return Path(instance_path) / KEY_FILE


def load(instance_path: Path, env_keys: str = "") -> Keyring:
    """The keys from IVR_DATA_KEY if set, else from the instance's key file (never created here)."""
    if env_keys.strip():
        return Keyring.from_keys(env_keys.split(","), ENV_VAR)
    path, label = key_file(instance_path), f"the instance folder's {KEY_FILE}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Keyring(source=str(path), problem=f"{label} does not exist and {ENV_VAR} is not set "
                                                 "(`ivr setup` makes the file)", label=label)
    except OSError as exc:
        return Keyring(source=str(path), problem=f"{label} cannot be read ({exc.strerror})", label=label)
    return Keyring.from_keys(text.splitlines(), str(path), label)


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file in one step, mode 0600 from its first byte (a reader sees the old or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# ivr data keys, newest first; keep a copy apart from the database backups\n")
        fh.write("".join(k + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def ensure_key_file(instance_path: Path, env_keys: str = "") -> bool:
    """Make the instance's key file with a new key if there is no key at all. True if it was made."""
    path = key_file(instance_path)
    if env_keys.strip() or path.exists():
        return False
    write_key_file(path, [Fernet.generate_key().decode()])
    log.info("made a new data key in %s", path)
    return True


# -- which keyring a Database uses ------------------------------------------------------------------------
# Store functions get a Database, not the configuration; whoever builds one from a configuration (the app,
# the CLI, `ivr background`) says where its keys are. The key file is read again when it changes, so every
# worker follows `ivr keys rotate` without a restart.
_SOURCES: dict[str, tuple[Path, str]] = {}
_LOADED: dict[str, tuple[float | None, Keyring]] = {}


def use(db_url: str, instance_path: Path, env_keys: str = "") -> None:
    """Numbers stored in the database at `db_url` are sealed with the keys of this instance (or IVR_DATA_KEY)."""
    from ivr.store.db import normalize_url

    _SOURCES[normalize_url(db_url)] = (Path(instance_path), env_keys)
    _LOADED.pop(normalize_url(db_url), None)


def keyring_for(db) -> Keyring:
    """The keyring for this Database (`db.url`), reloaded when the key file changed."""
    source = _SOURCES.get(db.url)
    if source is None:
        return Keyring(problem="no data key configured for this database (the process never said where its "
                               "instance folder is)")
    instance_path, env_keys = source
    stamp = None
    if not env_keys.strip():
        try:
            stamp = key_file(instance_path).stat().st_mtime_ns
        except OSError:
            stamp = -1
    cached = _LOADED.get(db.url)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load(instance_path, env_keys))
        _LOADED[db.url] = cached
    return cached[1]


def seal(db, number: str | None) -> str | None:
    """A number as it is stored in `db`; None and "" stay so."""
    return keyring_for(db).seal(number) if number else number


def open_number(db, stored: str | None) -> str | None:
    """The number a stored value holds, for the feature about to use it (DataKeyError if it cannot)."""
    return keyring_for(db).open(stored) if stored else stored


def truncate_wal(engine) -> None:
    """SQLite: copy the WAL into the database file and empty it, so no frame keeps a value just removed.

    With `PRAGMA secure_delete=ON` (ivr/store/db.py) the pages a removal frees are zeroed in the database
    file; the WAL still holds the old frames until a checkpoint, and TRUNCATE also cuts the file to 0 bytes.
    A reader in the middle of a read makes it give up this time (the next removal or housekeeping tries
    again): a removal never waits for it."""
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        busy = cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        cur.close()
        if busy:
            log.info("WAL not truncated this time: a reader was busy (the next removal tries again)")
    finally:
        raw.close()


def after_removal(conn) -> None:
    """Call inside a `Database.write()` that removes a number: once it commits, the WAL is truncated."""
    from ivr.store.db import after_commit

    after_commit(conn, lambda: truncate_wal(conn.engine))


# -- job payloads: the fields that hold a number (the same the job runner scrubs once a job is over) ----------
NUMBER_FIELDS = ("to", "number", "from")
# Marks a job stored with its numbers masked because no data key could seal them: it can never run (ivr jobs
# retry says so instead of sending a text to "***1234").
MASKED_WITHOUT_KEY = "numbers_masked_without_data_key"


def holds_number(name: str, value) -> bool:
    """Is this payload field a number (sealed or in clear), not one masked once its job was over?"""
    return name in NUMBER_FIELDS and isinstance(value, str) and bool(value) and not value.startswith("***")


def seal_payload(db, payload: dict) -> dict:
    """A job's payload as stored: its numbers sealed (DataKeyError if there is no usable key)."""
    ring = keyring_for(db)
    return {k: ring.seal(v) if holds_number(k, v) else v for k, v in payload.items()}


def open_payload(db, payload: dict) -> dict:
    """A stored job's payload with its numbers opened, for the handler about to use them."""
    ring = keyring_for(db)
    return {k: ring.open(v) if holds_number(k, v) else v for k, v in payload.items()}


def stored_job(db, payload: dict) -> dict:
    """The fields a job's record stores: its payload with the numbers sealed, or, with no usable data key, a
    failed job with the reason and the masked numbers only (never a number in clear)."""
    try:
        return {"payload": seal_payload(db, payload)}
    except DataKeyError as exc:
        log.error("a %s job is kept as failed: %s", payload.get("prompt", "job"), exc)
        return {"payload": {**masked_payload(payload), MASKED_WITHOUT_KEY: True}, "status": "failed",
                "last_error": f"DataKeyError: {exc}"[:2000]}


def opened_for_scrub(db, payload: dict) -> dict:
    """A payload about to be scrubbed (a done job, an old dead letter): opened, so the scrub keeps the last
    digits of the number and not of its token; masked outright when its key is gone."""
    try:
        return open_payload(db, payload)
    except DataKeyError:
        return masked_payload(payload)


def masked_payload(payload: dict) -> dict:
    """The payload with only the last four digits of each number: what is kept when a number cannot be."""
    return {k: ("***" if is_sealed(v) else "***" + v[-4:]) if holds_number(k, v) else v for k, v in payload.items()}


def shown(db, stored: str | None, masked: str) -> str:
    """A number for staff who may see it in full (the callbacks worklist): opened, or else the masked form
    saying why (the page still works without the key)."""
    try:
        return open_number(db, stored) or masked
    except DataKeyError:
        return f"{masked} (data key missing)"


def key_problem(db) -> str | None:
    """For /healthz: None when numbers can be sealed and the latest stored one opens; else why the features
    that need a number (SMS, callback dialling, "call now") wait. Callers are served either way."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ivr.store.models import Callback

    ring = keyring_for(db)
    try:
        ring._fernet()
        with db.read() as conn:
            latest = conn.execute(select(Callback.number).where(Callback.number.is_not(None))
                                  .order_by(Callback.id.desc()).limit(1)).scalar()
        ring.open(latest or "")
    except DataKeyError as exc:
        return f"data key: {exc}"
    except SQLAlchemyError:
        return None  # the database being away is reported on its own
    return None
