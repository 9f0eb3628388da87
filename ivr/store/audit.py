"""The audit log: every change of mode, rules, announcement or incident says who, when, from, to and why."""
from __future__ import annotations

from sqlalchemy import Connection, insert

from ivr.core.errors import Refused
from ivr.store.models import AuditEntry, utcnow


def required_reason(reason, refused: type[Refused] = Refused) -> str:
    """The reason a change must give (text, not blank), trimmed to what the audit log keeps."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise refused("say why (a reason is required and kept in the audit log)")
    return text[:500]


def audit(conn: Connection, *, actor: str, action: str, subject: str = "", from_value: str | None = None,
          to_value: str | None = None, reason: str = "") -> None:
    """Write one audit entry inside the caller's transaction, so the change and its record land together."""
    conn.execute(insert(AuditEntry).values(
        at=utcnow(), actor=actor or "unknown", action=action, subject=subject,
        from_value=from_value, to_value=to_value, reason=reason,
    ))
