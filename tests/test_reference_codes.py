"""Reference codes on notices: random, checked by their last digit, stored only as a keyed hash."""
from __future__ import annotations

import pytest

from ivr.core.reference_codes import LENGTH, code_hash, new_code, normalize, printed
from ivr.store.models import utcnow
from ivr.store.verification import reference_hash, reference_key


def test_a_new_code_is_ten_digits_that_pass_their_own_check():
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000  # random: no repeats in a small sample
    assert all(len(c) == LENGTH and c.isdigit() and normalize(c) == c for c in codes)


def test_the_check_digit_is_luhns_so_codes_made_elsewhere_check_too():
    """A company may print its own references (imported with the list): the last digit is the standard Luhn
    check digit, as payment cards use. 123456789 -> 7 is the textbook case."""
    assert normalize("1234567897") == "1234567897" and normalize("0000000000") == "0000000000"
    assert [d for d in "0123456789" if normalize("123456789" + d)] == ["7"]
    assert normalize("7992739875") == "7992739875" and normalize("4992739875") is None  # 4 doubled is 8, 7: 5


def test_new_codes_use_every_leading_digit():
    assert len({new_code()[0] for _ in range(500)}) == 10  # nine random digits, zero-padded, then the check


def test_a_mistyped_code_is_refused_without_a_lookup():
    code = new_code()
    for i in range(LENGTH):  # every single-digit error
        for d in "0123456789":
            if d != code[i]:
                assert normalize(code[:i] + d + code[i + 1:]) is None
    swapped = [code[:i] + code[i + 1] + code[i] + code[i + 2:] for i in range(LENGTH - 1)
               if code[i] != code[i + 1] and {code[i], code[i + 1]} != {"0", "9"}]  # Luhn misses 09/90 only
    assert all(normalize(s) is None for s in swapped)


@pytest.mark.parametrize("keys", ["", "12345", "123456789012", "12345abcde", "١٢٣٤٥٦٧٨٩٠"])
def test_malformed_keys_are_refused(keys):
    assert normalize(keys) is None


def test_a_code_one_digit_too_short_or_too_long_is_refused_even_when_its_check_digit_fits():
    from ivr.core.reference_codes import _luhn_digit

    code = new_code()
    longer, shorter = code + _luhn_digit(code), code[:-2] + _luhn_digit(code[:-2])
    assert normalize(longer) is None and normalize(shorter) is None


def test_a_printed_code_and_a_keyed_in_one_normalize_alike():
    code = new_code()
    assert normalize(printed(code)) == code
    assert normalize(code + "#") == code
    assert normalize(f"{code[:5]}-{code[5:]}") == code


def test_the_stored_hash_is_the_imported_references_kind_under_its_key():
    code = new_code()
    key = reference_key("s3cret")
    assert code_hash(key, code) == reference_hash("s3cret", code).hex()
    assert code_hash(key, code) != code_hash(reference_key("other"), code)
    assert code not in code_hash(key, code)


def test_a_recipient_is_found_by_the_hash_of_their_reference_and_by_nothing_else(config):
    from ivr.store.db import Database
    from ivr.store.models import NoticeCampaign, NoticeRecipient
    from ivr.store.notices import recipient_by_reference, reference_hash_of

    db = Database(config.database_url)
    code = new_code()
    with db.write() as conn:
        campaign = conn.execute(NoticeCampaign.__table__.insert().values(
            name="t", state="planned", channels="sms", rate_per_second=1.0, statements="{}",
            hotline_number="", notice_url="", sender="", source="", file_sha256="", created_by="t",
            created_at=utcnow(), updated_at=utcnow())).inserted_primary_key[0]
        conn.execute(NoticeRecipient.__table__.insert().values(
            campaign_id=campaign, number_hash=b"h" * 16, language="es", exposed="card", time_zones="",
            reference_hash=reference_hash_of(config.secret_key, code), state="sent", attempts=1,
            created_at=utcnow()))
    found = recipient_by_reference(db, reference_hash_of(config.secret_key, code))
    assert found == {"campaign_id": campaign, "language": "es", "exposed": "card", "number_hash": b"h" * 16}
    assert recipient_by_reference(db, reference_hash_of(config.secret_key, new_code())) is None
    assert recipient_by_reference(db, reference_hash_of("another secret", code)) is None
    db.dispose()
