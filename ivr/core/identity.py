"""Who called, as far as the hotline keeps it: a keyed hash and a masked tail, never the number itself."""
from __future__ import annotations

import functools
import hashlib
import hmac
import re

_E164ISH = re.compile(r"^\+?[0-9]{4,20}$")
_SEPARATORS = re.compile(r"[\s().-]")


def caller_identity(secret_key: str, number: str | None) -> tuple[str | None, str | None]:
    """A keyed hash and a masked form of a caller's number: we keep no more than that."""
    if not number:
        return None, None
    cleaned = _SEPARATORS.sub("", number)
    if not _E164ISH.match(cleaned):
        return None, "withheld" if "anonymous" in number.lower() else "unknown"
    # hmac.digest: the one-shot form, computed in C without an HMAC object (the same bytes, in every call)
    digest = hmac.digest(_caller_key(secret_key), cleaned.lstrip("+").encode(), "sha256").hex()
    return digest, "***" + cleaned[-4:]


@functools.lru_cache(maxsize=4)
def _caller_key(secret_key: str) -> bytes:
    """The key caller numbers are hashed with, derived from the app's secret (once per process, not per call)."""
    return hmac.new(secret_key.encode(), b"caller-number", hashlib.sha256).digest()
