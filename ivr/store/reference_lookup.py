"""Is a reference keyed in on the hotline on the list? Two places hold references, both as the same keyed
hash: those imported with the breach list (ivr/store/verification.py) and those printed on the notices the
hotline sent (ivr/store/notices.py). Both are asked every time, so the work, and the time it takes, is the
same whichever holds it or neither (ivr/core/verification.py decides what the caller hears). Reads only."""
from __future__ import annotations

from ivr.core.verification import Listed
from ivr.store.db import Database
from ivr.store.notices import recipient_by_reference
from ivr.store.verification import on_list, reference_hash


def listed(db: Database, secret_key: str, digits: str) -> Listed | None:
    """The reference as listed (what was exposed, and its key: the keyed hash in hex), else None."""
    key = reference_hash(secret_key, digits).hex()
    imported = on_list(db, secret_key, digits)
    notice = recipient_by_reference(db, key)
    if imported is not None:
        return Listed(imported, key)
    return None if notice is None else Listed(notice["exposed"] or "", key)
