"""The hotline's state as a call step sees it: the mode and the published content (a frozen value)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

MODES = ("message", "live")  # everything is in the announcement, or agents take calls
TOPICS = ("main", "details", "advice")  # what an announcement answers: the main message, key 1, key 2


@dataclass(frozen=True)
class Spoken:
    """What a caller hears for one topic in one language: audio when there is some, else the text."""

    text: str | None
    media: str | None = None  # sha256 of phone-ready audio, served under /media/<sha256>.wav
    version: int = 0
    source: str = ""  # text | tts | upload | phone; carry-over and default are stand-ins (ivr/core/caller_now.py)
    published_at: float | None = None  # seconds since the epoch: which statement is newer
    duration_ms: int | None = None  # of the audio: how long a caller listens to it


@dataclass(frozen=True)
class Content:
    version: int = 0
    incident_id: int | None = None
    incident_title: str = ""
    severity: str = ""
    spoken: dict[str, Spoken] = field(default_factory=dict)  # key: "<lang>/<topic>"

    def find(self, lang: str, topic: str, fallback_lang: str) -> tuple[Spoken, str] | None:
        """The announcement on `topic` in the caller's language, else in the fallback language."""
        for code in (lang, fallback_lang):
            spoken = self.spoken.get(f"{code}/{topic}")
            if spoken and (spoken.text or spoken.media):
                return spoken, code
        return None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Content":
        spoken = {k: Spoken(**v) for k, v in (data.get("spoken") or {}).items()}
        return cls(**{**data, "spoken": spoken})


@dataclass(frozen=True)
class Snapshot:
    mode: str
    content: Content
    fresh: bool = True  # False: the database could not be read; this is the last good state
