"""How a failed sign-in's name appears in the log and the audit log.

People type their password into the name field (a slip of the tab key, a password manager filling the
wrong box); a log line that repeats what was typed would keep that password for anyone who reads the logs.
So a name is written as typed only when it is a user's name; anything else is "an unknown name" with a short
keyed hash, which tells repeated tries of the same text apart without telling what the text was.
"""
from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import func, select

from ivr.store.db import Database
from ivr.store.models import User


def shown_name(db: Database, secret_key: str, name: str) -> str:
    """`dana` for a user's name (however it was capitalised), else `an unknown name #1a2b3c4d`."""
    typed = name.strip()[:120]
    with db.read() as conn:
        known = conn.execute(select(User.name).where(func.lower(User.name) == typed.lower())).scalar()
    if known is not None:
        return known
    tag = hmac.new(secret_key.encode(), typed.lower().encode(), hashlib.sha256).hexdigest()[:8]
    return f"an unknown name #{tag}"
