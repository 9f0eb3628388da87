"""Phone numbers as callers and breach lists write them, made E.164 ('+12125550123'), with why when they are not."""
from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata

from ivr.core.errors import Refused


class InvalidNumber(Refused):
    """A string that is not a valid phone number; `reason` says why in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_LENGTH_ERRORS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
}
_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan",
               "voicemail", "fixed_line", "mobile")


def callable_number(raw: str | None) -> str | None:
    """A caller's number as E.164 when a call back or a text can reach it (phonenumbers calls it valid); None
    when it is withheld or no such number exists ('+15555550123'): such a caller is offered a voicemail, never
    promised a callback or a text."""
    try:
        return normalize(raw or "")
    except InvalidNumber:
        return None


def normalize(raw: str, default_region: str = "US") -> str:
    """A phone number in any usual format as E.164 ('+12125550123'); raises InvalidNumber with the reason."""
    return _normalizer(default_region.upper())(raw)


@lru_cache(maxsize=16)
def _normalizer(default_region: str) -> "Normalizer":
    return Normalizer(default_region)


class Normalizer:
    """`normalize` for one default region, with a fast path that gives phonenumbers' own answers.

    phonenumbers takes 60-80 µs to parse and validate a number: 10 minutes for 10 million. Plain '+E.164'
    and plain national digits (separators allowed) take a fast path (about 3 µs) that applies phonenumbers'
    own validity patterns, precompiled; it is used only where phonenumbers' parsing could not have read the
    digits differently (no national prefix, international prefix, country code or leading zero at the
    start), and only to accept: anything it would reject goes through phonenumbers in full. Tests check the
    two agree on random numbers across all country codes.
    """

    def __init__(self, default_region: str):
        metadata = PhoneMetadata.metadata_for_region(default_region)
        if metadata is None:
            raise ValueError(f"unknown region {default_region!r} (use a two-letter code such as US or GB)")
        self.region = default_region
        self._cc_str = str(metadata.country_code)
        self._idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
        self._national_prefix = _compiled(metadata.national_prefix_for_parsing)

    def __call__(self, raw: str) -> str:
        e164 = self._fast(raw)
        return e164 if e164 is not None else self._slow(raw)

    def _fast(self, raw: str) -> str | None:
        s = raw.replace(" ", "").replace("-", "").replace("(", "").replace(")", "").replace(".", "")
        if not s.isascii():
            return None
        if s[:1] == "+":
            digits = s[1:]
            if not digits.isdigit():
                return None
            for n in (1, 2, 3):
                country = _country(digits[:n])
                if country is not None:
                    return "+" + digits if country.accepts(digits[n:]) else None
            return None
        if not s.isdigit() or s[0] == "0" or s.startswith(self._cc_str):
            return None
        if self._idd is not None and self._idd.match(s):
            return None
        if self._national_prefix is not None and self._national_prefix.match(s):
            return None
        country = _country(self._cc_str)
        return "+" + self._cc_str + s if country is not None and country.valid(s) else None

    def _slow(self, raw: str) -> str:
        """phonenumbers in full; an extension ("x 12") is dropped: callers ring from the number itself."""
        if not raw or not raw.strip():
            raise InvalidNumber("empty")
        try:
            number = phonenumbers.parse(raw, self.region)
        except NumberParseException as exc:
            raise InvalidNumber(_PARSE_ERRORS.get(exc.error_type, "not a phone number")) from None
        if not phonenumbers.is_valid_number(number):
            why = phonenumbers.is_possible_number_with_reason(number)
            region = phonenumbers.region_code_for_country_code(number.country_code)
            raise InvalidNumber(f"{_LENGTH_ERRORS.get(why, 'not a valid number')} for {region} "
                                f"(+{number.country_code})")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _compiled(pattern: str | None):
    return re.compile(pattern) if pattern else None


_COUNTRIES: dict[str, "_CountryPatterns | None"] = {}


def _country(digits: str) -> "_CountryPatterns | None":
    """The patterns of the country calling code written `digits` ('1', '44'), None for no (usable) code."""
    try:
        return _COUNTRIES[digits]
    except KeyError:
        pass
    known = digits[:1] not in ("", "0")
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(digits)) if known else None
    if not regions or phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY in regions:
        country = None  # unknown, or a non-geographic code (+800, +882...): phonenumbers decides
    else:
        country = _CountryPatterns(int(digits), regions)
    _COUNTRIES[digits] = country
    return country


class _CountryPatterns:
    """phonenumbers.is_valid_number for one country code, with each region's type patterns precompiled."""

    def __init__(self, country_code: int, regions: tuple[str, ...]):
        main = PhoneMetadata.metadata_for_region(phonenumbers.region_code_for_country_code(country_code))
        self.national_prefix = _compiled(main.national_prefix_for_parsing)
        self.regions = []
        for code in regions:
            md = PhoneMetadata.metadata_for_region(code)
            if md is not None:
                leading = re.compile(md.leading_digits) if md.leading_digits else None
                self.regions.append((leading, _RegionPatterns(md)))

    def valid(self, nsn: str) -> bool:
        """Mirrors region_code_for_number + is_valid_number_for_region."""
        if len(self.regions) == 1:
            return self.regions[0][1].valid(nsn)
        for leading, patterns in self.regions:
            if leading is not None:
                if leading.match(nsn):
                    return patterns.valid(nsn)
            elif patterns.valid(nsn):
                return True
        return False

    def accepts(self, nsn: str) -> bool:
        """Valid, and read by phonenumbers as these very digits (no national prefix it would strip)."""
        if self.national_prefix is not None and self.national_prefix.match(nsn):
            return False
        return self.valid(nsn)


class _RegionPatterns:
    """phonenumbers' _number_type_helper(...) != UNKNOWN, as one regex per number length."""

    def __init__(self, md):
        general = md.general_desc
        self.general = _compiled(general.national_number_pattern) if general is not None else None
        self.general_lengths = set(general.possible_length) if general is not None else set()
        self.by_length: dict[int, re.Pattern | None] = {}
        self._descs = [getattr(md, name) for name in _TYPE_DESCS]

    def _union(self, length: int):
        parts = [d.national_number_pattern for d in self._descs
                 if d is not None and d.national_number_pattern
                 and (not d.possible_length or length in d.possible_length)]
        return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def valid(self, nsn: str) -> bool:
        if self.general is None:
            return False
        length = len(nsn)
        if self.general_lengths and length not in self.general_lengths:
            return False
        if not self.general.fullmatch(nsn):
            return False
        try:
            union = self.by_length[length]
        except KeyError:
            union = self.by_length[length] = self._union(length)
        return union is not None and union.fullmatch(nsn) is not None
