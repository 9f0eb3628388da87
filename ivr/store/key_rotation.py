"""The data keys' life: what is sealed under which key (`ivr keys status`), and re-encrypting every stored
number under a new key (`ivr keys rotate`) while the older keys still read, audited.

With the key file (one server), rotation writes the new key first and keeps the old ones after it, so every
process seals under the new key from its next number on (they reload the file when it changes) and opens
both; re-encrypts every stored number; checks again for any sealed meanwhile under an old key; and only
then drops the old keys. With IVR_DATA_KEY (several servers) nothing can be written for them: the operator
puts a new key first in IVR_DATA_KEY on every server, restarts, and rotation re-encrypts under it.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from ivr.core.errors import Refused
from ivr.store import sealed
from ivr.store.audit import audit
from ivr.store.db import Database
from ivr.store.models import Agent, Callback, Job

COLUMNS = ((Callback, "number"), (Agent, "phone"))


@dataclass
class KeyReport:
    """Where the keys are and what the database holds: counts only, never a number."""

    source: str
    fingerprints: list[str]
    problem: str = ""
    file_mode: str = ""  # "0600" when the keys are in the key file
    counts: dict[str, int] = field(default_factory=lambda: dict(newest=0, older=0, unreadable=0, clear=0))

    @property
    def problems(self) -> list[str]:
        found = [self.problem] if self.problem else []
        if self.file_mode and self.file_mode != "0600":
            found.append(f"the key file's mode is {self.file_mode}: it must be 0600 (chmod 600 {self.source})")
        if self.counts["unreadable"]:
            found.append(f"{self.counts['unreadable']} stored numbers were sealed under a key not held here")
        if self.counts["clear"]:
            found.append(f"{self.counts['clear']} numbers are stored in clear (`ivr keys rotate` seals them)")
        return found


def _stored(conn):
    """(table, row id, field, value) of every number stored: sealed or, from before sealing, in clear."""
    for model, column in COLUMNS:
        col = getattr(model, column)
        for key, value in conn.execute(select(model.id, col).where(col.is_not(None))):
            if value:
                yield model.__tablename__, key, column, value
    # Any status: a job that failed for good keeps its (sealed) payload so that it can be retried.
    for key, payload in conn.execute(select(Job.id, Job.payload)):
        for name, value in json.loads(payload or "{}").items():
            if sealed.holds_number(name, value):
                yield "jobs", key, name, value


def _kind(ring: sealed.Keyring, value: str) -> str:
    if not sealed.is_sealed(value):
        return "clear"
    for i, key in enumerate(ring.keys):
        try:
            Fernet(key).decrypt(value.encode())
            return "newest" if i == 0 else "older"
        except InvalidToken:
            continue
    return "unreadable"


def report(db: Database) -> KeyReport:
    ring = sealed.keyring_for(db)
    mode = ""
    if ring.source and ring.source != sealed.ENV_VAR and os.path.exists(ring.source):
        mode = f"{stat.S_IMODE(os.stat(ring.source).st_mode):04o}"
    result = KeyReport(ring.source, [sealed.fingerprint(k) for k in ring.keys], ring.problem, mode)
    with db.read() as conn:
        for _table, _key, _field, value in _stored(conn):
            result.counts[_kind(ring, value)] += 1
    return result


def _reseal(db: Database, ring: sealed.Keyring) -> tuple[int, int]:
    """Every stored number not under the newest key re-encrypted under it (in clear: sealed). Returns
    (re-encrypted, unreadable)."""
    changed = unreadable = 0
    with db.write() as conn:
        for table, key, name, value in list(_stored(conn)):
            kind = _kind(ring, value)
            if kind == "unreadable":
                unreadable += 1
            if kind in ("newest", "unreadable"):
                continue
            new = ring.rotate(value)
            changed += 1
            if table == "jobs":
                payload = json.loads(conn.execute(select(Job.payload).where(Job.id == key)).scalar())
                conn.execute(update(Job).where(Job.id == key).values(payload=json.dumps({**payload, name: new})))
            else:
                model = Callback if table == "callbacks" else Agent
                conn.execute(update(model).where(model.id == key).values({name: new}))
        sealed.after_removal(conn)  # the old tokens' frames go from SQLite's WAL
    return changed, unreadable


def rotate(db: Database, *, actor: str, reason: str = "") -> dict:
    """Re-encrypt every stored number under a new key (key file) or under the first of IVR_DATA_KEY."""
    ring = sealed.keyring_for(db)
    if not ring.usable:
        raise Refused(f"no usable data key to rotate from: {ring.problem}")
    old = [sealed.fingerprint(k) for k in ring.keys]
    in_file = ring.source != sealed.ENV_VAR
    if in_file:
        new_key = Fernet.generate_key().decode()
        path = Path(ring.source)
        sealed.write_key_file(path, [new_key, *ring.keys])  # the old keys stay, read-only, until done
        ring = sealed.keyring_for(db)
    elif len(ring.keys) < 2:
        raise Refused(f"{sealed.ENV_VAR} is set, so the new key must be given there: put a new key first in "
                      f"{sealed.ENV_VAR} on every server, keep the old one after it, restart, and run this again "
                      f"(a new key: {Fernet.generate_key().decode()})")
    changed, unreadable = _reseal(db, ring)
    changed += _reseal(db, ring)[0]  # any number another process sealed under an old key meanwhile
    if in_file:
        sealed.write_key_file(path, [ring.keys[0]])
    new = sealed.fingerprint(ring.keys[0])
    with db.write() as conn:
        audit(conn, actor=actor, action="data_key.rotate", subject=f"data key {new}",
              from_value=", ".join(old), to_value=f"{changed} numbers re-encrypted under {new}"
              + (f"; {unreadable} unreadable left as they were" if unreadable else ""), reason=reason)
    return {"new": new, "old": old, "reencrypted": changed, "unreadable": unreadable,
            "old_keys_dropped": in_file}
