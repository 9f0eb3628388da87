"""Personal reference codes printed on breach notices: random, unguessable, short enough to key in on a phone.

A code is 10 digits: 9 from `secrets` and a Luhn check digit, so a mistyped code (one digit wrong, or two
neighbours swapped) is refused without a lookup. Stored only as a keyed hash (`code_hash`). Pure.
"""
from __future__ import annotations

import hmac
import secrets

LENGTH = 10
HASH_BYTES = 16  # as the breach list's hashes (ivr/store/affected.py): 128 bits, no collision in practice
_SEPARATORS = str.maketrans("", "", " -.#")  # as printed ("48210 09377") or keyed in (a trailing #)


def _luhn_digit(payload: str) -> str:
    """The digit that makes payload + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # these get doubled once the check digit is appended on the right
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def new_code() -> str:
    """A fresh code: 9 random digits and their check digit."""
    payload = f"{secrets.randbelow(10 ** (LENGTH - 1)):0{LENGTH - 1}d}"
    return payload + _luhn_digit(payload)


def normalize(keys: str) -> str | None:
    """The code a caller keyed in or a person typed, as its 10 digits; None when malformed or the check digit
    fails (no lookup needed to refuse it)."""
    digits = (keys or "").translate(_SEPARATORS)
    if len(digits) != LENGTH or not digits.isascii() or not digits.isdigit():
        return None
    return digits if _luhn_digit(digits[:-1]) == digits[-1] else None


def printed(code: str) -> str:
    """A code as printed on a notice: two groups of five, easier to read out and key in."""
    return f"{code[:5]} {code[5:]}"


def code_hash(key: bytes, code: str) -> str:
    """The stored form of a code: HMAC-SHA256 under `key`, first 16 bytes, hex. With the references' key
    (ivr.store.verification.reference_key) it is `reference_hash(secret, code).hex()`, so a notice's code
    and an imported reference are the same kind of value."""
    return hmac.digest(key, code.encode(), "sha256")[:HASH_BYTES].hex()
