"""Notice campaigns in the database: who is on one, what they were sent, who opted out.

Numbers are sealed (ivr/store/sealed.py) and hashed as the breach list hashes them (ivr/store/affected.py);
references only as keyed hashes (ivr/core/reference_codes.py `code_hash` under `reference_key`).
Planning from a file: ivr/store/notice_plan.py; sending: ivr/worker/notices.py.
"""
from __future__ import annotations

from sqlalchemy import bindparam, select

from ivr.core.reference_codes import code_hash
from ivr.store.db import Database
from ivr.store.models import NoticeRecipient
from ivr.store.verification import reference_key


def reference_hash_of(secret_key: str, code: str) -> str:
    """The stored form of a notice's code (already normalized: ivr.core.reference_codes.normalize)."""
    return code_hash(reference_key(secret_key), code)


def recipient_by_reference(db: Database, reference_hash: str) -> dict | None:
    """The recipient whose notice carried this reference: {campaign_id, language, exposed, number_hash
    (bytes, as affected_numbers)}; None if no notice did. One indexed lookup."""
    with db.read() as conn:
        row = conn.execute(_BY_REFERENCE, {"h": reference_hash}).first()
    return None if row is None else dict(row._mapping)


_BY_REFERENCE = select(NoticeRecipient.campaign_id, NoticeRecipient.language, NoticeRecipient.exposed,
                       NoticeRecipient.number_hash).where(NoticeRecipient.reference_hash == bindparam("h"))
