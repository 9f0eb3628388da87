"""Phone numbers as callers and breach lists write them, made E.164 (ivr/core/phone_numbers.py): national and
international formats, the reasons a number is refused, and the fast path held to phonenumbers' own answers."""
from __future__ import annotations

import random

import phonenumbers
import pytest

from ivr.core import phone_numbers
from ivr.core.phone_numbers import InvalidNumber, Normalizer, normalize


@pytest.mark.parametrize("raw, region, e164", [
    ("(212) 555-0123", "US", "+12125550123"),
    ("212-555-0123", "US", "+12125550123"),
    ("212.555.0123", "US", "+12125550123"),
    ("2125550123", "US", "+12125550123"),
    ("1 212 555 0123", "US", "+12125550123"),
    ("  +1 (212) 555-0123 ", "US", "+12125550123"),
    ("+12125550123", "GB", "+12125550123"),
    ("212-555-0123 ext. 7", "US", "+12125550123"),
    ("011 44 20 7946 0018", "US", "+442079460018"),
    ("+44 (0)20 7946 0018", "US", "+442079460018"),
    ("020 7946 0018", "GB", "+442079460018"),
    ("020 7946 0018", "gb", "+442079460018"),
    ("030 901820", "DE", "+4930901820"),
    ("+33 1 42 68 53 00", "US", "+33142685300"),
    ("+39 06 6982 0000", "US", "+390669820000"),  # Italy keeps its leading zero
    ("(02) 9374 4000", "AU", "+61293744000"),
    ("8 (495) 123-45-67", "RU", "+74951234567"),
])
def test_normalize_reads_national_and_international_formats(raw, region, e164):
    assert normalize(raw, region) == e164


@pytest.mark.parametrize("raw, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("call me", "not a phone number"),
    ("12", "too short for US (+1)"),
    ("555-0123", "not a valid number for US (+1)"),
    ("+1 212 555 01234", "too long for US (+1)"),
    ("+999 123456", "unknown country code"),
    ("+07 912 345 6789", "unknown country code"),  # no code starts with 0: not Russia's +7 9123456789
    ("(212) 155-0123", "not a valid number for US (+1)"),  # no exchange starts with 1
    ("+44 20 7946 001", "not a valid number for GB (+44)"),
])
def test_normalize_rejects_invalid_numbers_with_a_reason(raw, reason):
    """The reason as an import report or `ivr affected check` prints it, word for word."""
    with pytest.raises(InvalidNumber) as exc:
        normalize(raw, "US")
    assert exc.value.reason == str(exc.value) == reason


def test_normalize_refuses_an_unknown_region():
    with pytest.raises(ValueError, match="unknown region"):
        normalize("2125550123", "XX")


def _fast_path_agrees(rounds: int, seed: int = 20261129) -> int:
    """Random strings across every country code and format: the fast path only ever agrees with the slow.
    Returns how often the fast path answered."""
    rng = random.Random(seed)
    codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    examples = [ex for region in sorted(phonenumbers.SUPPORTED_REGIONS)
                for ex in (phonenumbers.example_number(region), phonenumbers.example_number_for_type(
                    region, phonenumbers.PhoneNumberType.MOBILE)) if ex]
    normalizers = [Normalizer(r) for r in ("US", "GB", "DE", "IT", "BR", "RU", "IN", "CA", "JM", "AU", "KZ")]
    fast = 0
    for _ in range(rounds):
        if rng.random() < 0.5:
            ex = rng.choice(examples)
            code, nsn = ex.country_code, phonenumbers.national_significant_number(ex)
            nsn = "".join(d if rng.random() > 0.15 else str(rng.randrange(10)) for d in nsn)
        else:
            code = rng.choice(codes)
            nsn = "".join(str(rng.randrange(10)) for _ in range(rng.randint(3, 14)))
        raw = rng.choice([f"+{code}{nsn}", f"+{code} {nsn[:3]}-{nsn[3:]}", nsn, f"({nsn[:3]}) {nsn[3:]}",
                          f"{code}{nsn}", f"0{nsn}", f"00{code}{nsn}", f"8{nsn}"])
        norm = rng.choice(normalizers)
        try:
            slow = norm._slow(raw)
        except InvalidNumber:
            slow = None
        quick = norm._fast(raw)
        fast += quick is not None
        assert quick in (None, slow), (raw, norm.region)
        try:
            assert norm(raw) == slow, (raw, norm.region)
        except InvalidNumber:
            assert slow is None, (raw, norm.region)
    return fast


@pytest.mark.slow
def test_the_fast_path_gives_phonenumbers_own_answers():
    assert _fast_path_agrees(4000) > 400  # and the fast path is actually taken


@pytest.mark.parametrize("raw, e164", [
    ("(212) 555-0123", "+12125550123"), ("212.555.0123", "+12125550123"), ("212-555-0123", "+12125550123"),
    ("+1 (212) 555-0123", "+12125550123"), ("+1.212.555.0123", "+12125550123"),
    ("+7 (912) 345.67.89", "+79123456789"), ("+44 20 7946 0018", "+442079460018"),
    ("+353 1 234 5678", "+35312345678"),
])
def test_the_usual_written_forms_take_the_fast_path(raw, e164):
    """A breach list writes numbers with brackets, dots, dashes and spaces, and country codes of one, two and
    three digits: each of these read by the fast path, not by phonenumbers in full at 20 times the time (the
    answer would be the same, the import of 10,000,000 rows not: docs/performance.md)."""
    assert Normalizer("US")._fast(raw) == e164


def test_the_fast_path_agrees_with_phonenumbers_from_freshly_built_tables():
    """A sample of the above, fast, with the per-country pattern tables built again: they are built on first
    use and kept for the process, so a fault in building them would otherwise show only in a fresh process."""
    phone_numbers._COUNTRIES.clear()
    assert _fast_path_agrees(600, seed=7) > 60



def test_the_fast_path_agrees_with_phonenumbers_on_every_example_number_and_its_neighbours():
    """Every region's example number of every type, as E.164, with its national prefix in front, each digit
    changed to every other, and one digit shorter and longer (about 87,000 numbers, 59,000 of them taken by
    the fast path): where the fast path answers, it gives phonenumbers' answer. Tables built afresh."""
    phone_numbers._COUNTRIES.clear()
    candidates = set()
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            md = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if md is None:  # "001": the non-geographic codes, which phonenumbers always decides
                continue
            prefixes = {p for p in (md.national_prefix, md.national_prefix_for_parsing) if p and p.isdigit()}
            for desc in (getattr(md, name) for name in phone_numbers._TYPE_DESCS):
                ex = desc.example_number if desc is not None else None
                if ex:
                    candidates.update(f"+{code}{n}" for n in (ex, ex[:-1], *(p + ex for p in prefixes),
                                                              *(ex + d for d in "0123456789"),
                                                              *(ex[:i] + d + ex[i + 1:] for i in range(len(ex))
                                                                for d in "0123456789")))
    norm, fast = Normalizer("US"), 0
    for raw in sorted(candidates):
        quick = norm._fast(raw)
        if quick is not None:
            fast += 1
            assert quick == norm._slow(raw), raw
    assert len(candidates) > 80_000 and fast > 50_000


def test_the_fast_path_agrees_with_phonenumbers_on_numbers_as_dialled_in_every_region():
    """With every region as the default: its example numbers of every type as written at home (with the
    national prefix and separators, and as bare national digits) and a sample of other countries' as dialled
    from there (international prefix first): where the fast path answers, it gives phonenumbers' answer."""
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        examples += [(region, phonenumbers.parse(f"+{md.country_code}{desc.example_number}"))
                     for desc in (getattr(md, name) for name in phone_numbers._TYPE_DESCS)
                     if desc is not None and desc.example_number]
    fast = total = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        norm = Normalizer(region)
        raws = {phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.NATIONAL) for r, n in examples
                if r == region}
        raws |= {str(n.national_number) for r, n in examples if r == region}
        raws |= {phonenumbers.format_out_of_country_calling_number(n, region) for _, n in examples[::37]}
        for raw in raws:
            total += 1
            quick = norm._fast(raw)
            if quick is not None:
                fast += 1
                assert quick == norm._slow(raw), (region, raw)
    assert total > 9_000 and fast > 2_000
