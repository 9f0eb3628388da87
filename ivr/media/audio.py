"""Make any audio phone-ready: trimmed, loudness-normalised 8 kHz mono μ-law WAV, what Twilio plays best."""
from __future__ import annotations

import functools
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tempfile
import warnings
import wave
from dataclasses import dataclass, field

import imageio_ffmpeg

from ivr.core.errors import Refused
from ivr.core.limits import audio_length_limit, upload_too_large

with warnings.catch_warnings():
    # pydub warns at import time when ffmpeg is not on PATH; ffmpeg_exe() tells it where ours is.
    warnings.filterwarnings("ignore", message="Couldn't find ff", category=RuntimeWarning)
    from pydub import AudioSegment
    from pydub.silence import detect_leading_silence

PHONE_RATE = 8000
PAD_MS = 150  # silence kept around speech so the first syllable is not clipped when playback starts
# μ-law steps near full scale are ~0.3 dB: limit this far below the ceiling so rounding stays under it.
MULAW_MARGIN_DB = 0.3
FFMPEG_TIMEOUT_S = 120
# What ffmpeg may read: local files only (no http, no ftp: a playlist naming a URL fetches nothing), and
# only these demuxers, so an upload cannot be an HLS or concat playlist, an image sequence or a device.
PROTOCOLS = "file,pipe"
INPUT_FORMATS = "wav,w64,mp3,ogg,flac,aac,mov,mp4,m4a,3gp,3g2,mj2,matroska,webm"
ACCEPTED = "accepted formats: WAV, MP3, OGG (Vorbis or Opus), FLAC, AAC, M4A/MP4, WebM/Matroska"
WAVE_FORMAT_PCM, WAVE_FORMAT_MULAW, WAVE_FORMAT_EXTENSIBLE = 1, 7, 0xFFFE


class AudioRejected(Refused):
    """Audio that cannot be made phone-ready; `reason` is a stable code for callers and the UI."""

    REASONS = ("undecodable", "silent", "too_long", "too_big", "empty")

    def __init__(self, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        super().__init__(f"audio rejected ({reason}): {message}")
        self.reason = reason


@dataclass(frozen=True)
class PhoneAudio:
    """An 8 kHz mono μ-law WAV and what was measured on it."""

    wav: bytes = field(repr=False)
    duration_ms: int
    sha256: str
    dbfs: float
    peak_dbfs: float
    content_type: str = "audio/wav"


@functools.lru_cache(maxsize=None)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg to use (system first, else imageio-ffmpeg's); also configures pydub."""
    exe = shutil.which("ffmpeg") or imageio_ffmpeg.get_ffmpeg_exe()
    AudioSegment.converter = exe
    return exe


def decode(data: bytes, *, max_bytes: int = 20_000_000, max_decoded_seconds: float = 3600.0) -> AudioSegment:
    """Decode any audio ffmpeg understands (WAV, MP3, OGG, M4A, ...) to 16-bit PCM."""
    if not data:
        raise AudioRejected("empty", "the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise AudioRejected("too_big", upload_too_large(max_bytes))
    # A 20 MB upload can hold hours of low-bitrate audio; stop decoding just past the cap to bound memory.
    args = ["-map", "0:a:0", "-t", f"{max_decoded_seconds + 1:g}",
            "-af", "aformat=sample_fmts=s16:channel_layouts=mono|stereo", "-c:a", "pcm_s16le"]
    try:
        wav = _ffmpeg(data, args)
    except _FFmpegFailed as exc:
        raise AudioRejected("undecodable", f"not a playable audio file ({exc}); {ACCEPTED}") from None
    seg = _segment_from_wav(wav)
    if len(seg) == 0:
        raise AudioRejected("empty", "the file contains no audio samples")
    if len(seg) > max_decoded_seconds * 1000:
        raise AudioRejected("too_long", f"the recording is longer than {max_decoded_seconds:g} s")
    return seg


def make_phone_ready(
    seg: AudioSegment,
    *,
    max_seconds: float = 600,
    target_dbfs: float = -19.0,
    peak_headroom_db: float = 1.0,
    silence_thresh_dbfs: float = -50.0,
) -> PhoneAudio:
    """Mono, trimmed, loudness-normalised, 8 kHz μ-law WAV ready for Twilio <Play>."""
    seg = seg.set_channels(1).set_sample_width(2)
    seg = trim_silence(seg, silence_thresh_dbfs)
    if len(seg) > max_seconds * 1000:
        message = f"{len(seg) / 1000:.1f} s after trimming silence; the limit is {audio_length_limit(max_seconds)}"
        raise AudioRejected("too_long", message)
    # Measure at 8 kHz: what is cut above 4 kHz is not heard on the phone and must not count as loudness.
    narrow = _segment_from_wav(_ffmpeg(_wav_bytes(seg), ["-ar", str(PHONE_RATE), "-c:a", "pcm_s16le"]))
    gain = target_dbfs - narrow.dBFS
    ceiling = -peak_headroom_db - MULAW_MARGIN_DB
    filters = [f"volume={gain:.3f}dB"]
    if narrow.max_dBFS + gain > ceiling:
        # Speech peaks sit 12-20 dB above its RMS: a look-ahead limiter keeps the loudness
        # instead of turning everything down.
        limit = max(10 ** (ceiling / 20), 0.0625)  # alimiter accepts no lower limit (-24 dBFS)
        filters.append(f"alimiter=limit={limit:.4f}:attack=2:release=50:level=disabled:latency=1")
    wav = _ffmpeg(_wav_bytes(narrow), ["-af", ",".join(filters), "-c:a", "pcm_mulaw"])
    heard = load_phone_wav(wav)  # report what the caller will actually hear
    return PhoneAudio(
        wav=wav,
        duration_ms=len(heard.raw_data) * 1000 // PHONE_RATE // 2,
        sha256=hashlib.sha256(wav).hexdigest(),
        dbfs=round(heard.dBFS, 2),
        peak_dbfs=round(heard.max_dBFS, 2),
    )


def trim_silence(seg: AudioSegment, thresh_dbfs: float = -50.0, pad_ms: int = PAD_MS) -> AudioSegment:
    """Cut leading and trailing silence, keeping pad_ms of it on each side."""
    if len(seg) == 0:
        raise AudioRejected("empty", "there is no audio")
    # Peak below the threshold means every chunk is too; skip scanning minutes of silence 10 ms at a time.
    if seg.max_dBFS < thresh_dbfs:
        raise AudioRejected("silent", f"nothing is louder than {thresh_dbfs:g} dBFS")
    lead = detect_leading_silence(seg, silence_threshold=thresh_dbfs, chunk_size=10)
    if lead >= len(seg):
        raise AudioRejected("silent", f"nothing is louder than {thresh_dbfs:g} dBFS for 10 ms")
    tail = detect_leading_silence(seg.reverse(), silence_threshold=thresh_dbfs, chunk_size=10)
    return seg[max(0, lead - pad_ms):min(len(seg), len(seg) - tail + pad_ms)]


def load_phone_wav(data: bytes) -> AudioSegment:
    """Decode a μ-law WAV (as made by make_phone_ready) to a 16-bit AudioSegment, without ffmpeg."""
    tag, channels, rate, bits, payload = _parse_wav(data)
    if tag != WAVE_FORMAT_MULAW or bits != 8:
        raise AudioRejected("undecodable", f"not a μ-law WAV (format tag {tag}, {bits} bits)")
    pcm = bytearray(2 * len(payload))
    pcm[0::2] = payload.translate(_ULAW_LOW)  # bytes.translate runs in C; two tables give the 16-bit halves
    pcm[1::2] = payload.translate(_ULAW_HIGH)
    return AudioSegment(data=bytes(pcm), sample_width=2, frame_rate=rate, channels=channels)


# --- helpers --------------------------------------------------------------------------------------------


class _FFmpegFailed(RuntimeError):
    """ffmpeg exited non-zero; the message is its last error line."""


def _ffmpeg(data: bytes, args: list[str]) -> bytes:
    """Run ffmpeg on data, returning the WAV it writes (always a valid RIFF header)."""
    with tempfile.TemporaryDirectory(prefix="ivr-audio-") as tmp:
        # Files, not pipes: MP4/M4A readers need to seek, and the WAV muxer can only
        # fill in the RIFF/data sizes (and the fact chunk) when it can seek back.
        src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out.wav")
        with open(src, "wb") as f:
            f.write(data)
        cmd = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", PROTOCOLS,
               "-format_whitelist", INPUT_FORMATS, "-i", src, *args,
               "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "wav", "-y", dst]
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S)
        if proc.returncode != 0:
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise _FFmpegFailed(lines[-1] if lines else f"ffmpeg exited with {proc.returncode}")
        with open(dst, "rb") as f:
            return f.read()


def _wav_bytes(seg: AudioSegment) -> bytes:
    """Serialise a segment as PCM WAV in memory (pydub's export would spawn ffmpeg for some formats)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(seg.channels)
        w.setsampwidth(seg.sample_width)
        w.setframerate(seg.frame_rate)
        w.writeframes(seg.raw_data)
    return buf.getvalue()


def _segment_from_wav(data: bytes) -> AudioSegment:
    """16-bit PCM WAV bytes -> AudioSegment (pydub's own WAV path falls back to ffprobe on any surprise)."""
    tag, channels, rate, bits, payload = _parse_wav(data)
    if tag != WAVE_FORMAT_PCM or bits != 16:
        raise AudioRejected("undecodable", f"expected 16-bit PCM WAV, got format tag {tag}, {bits} bits")
    payload = payload[: len(payload) - len(payload) % (2 * channels)]
    return AudioSegment(data=payload, sample_width=2, frame_rate=rate, channels=channels)


def _parse_wav(data: bytes) -> tuple[int, int, int, int, bytes]:
    """Return (format tag, channels, sample rate, bits per sample, sample bytes) of a RIFF WAV."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioRejected("undecodable", "not a RIFF WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt " and size >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == WAVE_FORMAT_EXTENSIBLE and size >= 26:
                tag = struct.unpack_from("<H", data, body + 24)[0]  # first two bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk == b"data" and fmt is not None:
            return (*fmt, data[body:body + size])  # streamed headers overstate the size; slicing clamps it
        pos = body + size + (size & 1)  # chunks are word-aligned
    raise AudioRejected("undecodable", "WAV file has no fmt or data chunk")


def _ulaw_to_linear(byte: int) -> int:
    """G.711 μ-law byte -> 16-bit sample (same values as audioop.ulaw2lin and ffmpeg)."""
    u = ~byte & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return -magnitude if u & 0x80 else magnitude


_ULAW_LOW = bytes(_ulaw_to_linear(b) & 0xFF for b in range(256))
_ULAW_HIGH = bytes((_ulaw_to_linear(b) >> 8) & 0xFF for b in range(256))
