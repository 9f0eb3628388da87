"""Who called, as far as the hotline keeps it (ivr/core/identity.py): a keyed hash and a masked tail, never the
number. A withheld number comes from Twilio as `anonymous` (../shared/TWILIO.md); the call log shows it so."""
from __future__ import annotations

from ivr.core.identity import caller_identity

KEY = "a-secret-key-for-tests-0123456789"


def test_a_number_is_kept_as_a_keyed_hash_and_its_last_four_digits():
    digest, masked = caller_identity(KEY, "+1 (212) 555-0123")
    assert masked == "***0123" and len(digest) == 64 and "2125550123" not in digest
    assert caller_identity(KEY, "+12125550123") == (digest, masked)  # however it was written
    assert caller_identity("another-key-entirely-0123456789", "+12125550123")[0] != digest


def test_a_withheld_number_says_withheld_and_anything_else_unknown_with_no_hash():
    assert caller_identity(KEY, "anonymous") == (None, "withheld")
    assert caller_identity(KEY, "Anonymous") == (None, "withheld")
    assert caller_identity(KEY, "client:agent-7") == (None, "unknown")
    assert caller_identity(KEY, "") == caller_identity(KEY, None) == (None, None)
