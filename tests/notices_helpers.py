"""Shared by the notice tests: list files, the Twilio stand-in's configuration, reading what was sent."""
from __future__ import annotations

from pathlib import Path

from ivr.core.reference_codes import code_hash
from ivr.core.notices import references_in
from ivr.store.verification import reference_key

ACCOUNT = "AC" + "0" * 32
SENDER = "+12025550100"


def numbers(n: int, area: int = 202) -> list[str]:
    """n valid US numbers (+1 AREA 201..999 xxxx)."""
    return [f"+1{area}{201 + i // 10000:03d}{i % 10000:04d}" for i in range(n)]


def list_file(tmp_path: Path, rows: list[str], header: str | None = "number,language,exposed") -> Path:
    path = tmp_path / "list.csv"
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    return path


def statements(tmp_path: Path) -> dict[str, str]:
    return {"en": "We lost some of your data. Call us: {hotline}.", "es": "Perdimos algunos de sus datos."}


def codes_sent(stub, secret_key: str) -> dict[str, list[str]]:
    """Per number, the hashes of the reference codes its texts carried (one entry per text)."""
    key = reference_key(secret_key)
    out: dict[str, list[str]] = {}
    for message in stub.created:
        out.setdefault(message["to"], []).extend(code_hash(key, c) for c in references_in(message["body"]))
    return out
