"""The agents' part of routing_rules.yaml: how callbacks are tried, and the wrap-up codes agents record."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_WRAP_UP_CODES = {
    "card_replaced": "Card replaced",
    "password_reset": "Password reset",
    "fraud_reported": "Fraud reported",
    "question_answered": "Question answered",
    "escalated": "Escalated",
}


class Callbacks(BaseModel):
    """Owed callbacks, offered to agents who have nobody waiting (highest priority, then the original order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempts: int = Field(default=3, ge=1, le=10, description="dialled this often, then closed as unreachable")
    retry_minutes: int = Field(default=15, ge=1, le=1440, description="between an unanswered try and the next")
    promised_hours: int = Field(default=24, ge=1, le=720, description="what the reports count a callback kept within")


class Agents(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    callbacks: Callbacks = Callbacks()
    wrap_up_codes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_WRAP_UP_CODES), min_length=1)

    @field_validator("wrap_up_codes")
    @classmethod
    def _codes(cls, v: dict[str, str]) -> dict[str, str]:
        for code in v:
            if not code.replace("_", "").isalnum() or len(code) > 40:
                raise ValueError(f"wrap-up code {code!r}: use letters, digits and _ (at most 40)")
        return v
