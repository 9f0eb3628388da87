"""The soft tone callers hear between hold messages: made here, then put through the same pipeline as any
announcement (phone-ready, loudness-normalised, stored by checksum and served under /media/)."""
from __future__ import annotations

import array
import io
import math
import wave

from ivr.media import audio


RATE = 16_000
NOTES_HZ = (392.0, 493.9, 587.3, 493.9, 440.0, 523.3, 659.3, 523.3)  # a slow, quiet arpeggio, G and A minor
NOTE_S = 1.25
LEVEL_DB = -12.0  # well below speech; the pipeline sets the final loudness (made quieter again below)
_made: list = []  # one tone per process: the same input gives the same audio


def source_wav() -> bytes:
    """10 s of overlapping, decaying sine notes: no silence anywhere, so no dead air."""
    n = int(RATE * NOTE_S * len(NOTES_HZ))
    samples = [0.0] * n
    ring = int(RATE * NOTE_S * 2)  # each note rings into the next
    for i, hz in enumerate(NOTES_HZ):
        start = int(i * RATE * NOTE_S)
        for t in range(ring):
            at = (start + t) % n  # the last note rings into the first: the tone loops without a seam
            env = math.exp(-3.0 * t / ring) * min(1.0, t / 200)
            samples[at] += env * math.sin(2 * math.pi * hz * t / RATE)
    peak = max(abs(s) for s in samples) or 1.0
    scale = 32767 * 10 ** (LEVEL_DB / 20) / peak
    pcm = array.array("h", (int(s * scale) for s in samples))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def phone_ready() -> audio.PhoneAudio:
    if not _made:
        seg = audio.decode(source_wav())
        # Music under speech level: callers should notice the next message, not the tone.
        _made.append(audio.make_phone_ready(seg, target_dbfs=-27.0))
    return _made[0]
