"""How each configured limit is worded to people, naming the setting that changes it: computed here once, so
the console, the API, the CLI and the docs never give one limit in different units."""
from __future__ import annotations

UPLOAD_SETTING = "IVR_UPLOAD_MAX_BYTES"
AUDIO_SECONDS_SETTING = "IVR_AUDIO_MAX_SECONDS"


def _figure(value: float) -> str:
    """12 and 12.5, never 12.0: a limit is usually a round number."""
    return f"{value:.1f}".removesuffix(".0")


def size(n_bytes: int) -> str:
    """'20 MB', '2.5 MB', '1 kB', '900 bytes' (decimal units, as the setting is written in bytes). A size
    that would round to 1000 kB is said in MB: 999,999 bytes is '1 MB'."""
    if round(n_bytes / 1_000, 1) >= 1_000:
        return f"{_figure(n_bytes / 1_000_000)} MB"
    if n_bytes >= 1_000:
        return f"{_figure(n_bytes / 1_000)} kB"
    return f"{n_bytes} bytes"


def upload_limit(max_bytes: int) -> str:
    """'20 MB (IVR_UPLOAD_MAX_BYTES)': the largest announcement upload, as every surface says it."""
    return f"{size(max_bytes)} ({UPLOAD_SETTING})"


def upload_too_large(max_bytes: int) -> str:
    """What an upload over the limit is told, whether the file or the whole request around it was measured."""
    return f"the upload is larger than the limit of {upload_limit(max_bytes)}"


def audio_length_limit(max_seconds: float) -> str:
    """'300 s (IVR_AUDIO_MAX_SECONDS)': the longest announcement, uploaded or recorded by phone."""
    return f"{_figure(max_seconds)} s ({AUDIO_SECONDS_SETTING})"
