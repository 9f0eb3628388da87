"""Phone PINs (the admin line, the agent line), kept only as slow hashes."""
from __future__ import annotations

from werkzeug.security import check_password_hash, generate_password_hash

# A PIN is checked inside a phone webhook: slow enough to hurt guessing, not so slow the caller waits.
PIN_METHOD = "scrypt:4096:8:1"


def hash_pin(pin: str) -> str:
    return generate_password_hash(pin, PIN_METHOD)


def pin_matches(pin_hash: str | None, pin: str) -> bool:
    return bool(pin and pin_hash) and check_password_hash(pin_hash, pin)
