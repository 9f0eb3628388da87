"""Text to speech for the hotline: Google TTS when it answers quickly, offline espeak-ng otherwise."""
from __future__ import annotations

import ctypes
import io
import logging
import shutil
import struct
import subprocess
import sys
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

from gtts import gTTS

from ivr.core.errors import Refused

log = logging.getLogger(__name__)

ENGINES = ("gtts", "espeak")

# Language tag -> espeak-ng voices to try, best first.
# US callers expect US English and Latin American Spanish.
VOICE_ALIASES = {
    "en": ("en-us", "en"),
    "en-gb": ("en",),  # espeak-ng's British voice is the file named plain "en"
    "es": ("es-419", "es"),
    "pt": ("pt-br", "pt"),
    "zh": ("cmn",),
    "zh-cn": ("cmn",),
    "zh-tw": ("cmn",),
}

# espeak-ng constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # without it the library calls exit() when its data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class TTSError(Refused):
    """No engine could turn the text into audio."""


@dataclass(frozen=True)
class Speech:
    """Encoded audio produced by one engine."""

    data: bytes = field(repr=False)
    format: str  # "mp3" or "wav"
    engine: str  # "gtts" or "espeak-ng"
    voice: str


def synthesize(
    text: str,
    lang: str,
    *,
    engines: tuple[str, ...] = ENGINES,
    gtts_timeout: float = 3.0,
    voice: str | None = None,
) -> Speech:
    """Speak text in lang with the first engine that works; `voice` names an espeak-ng voice."""
    if not text or not text.strip():
        raise ValueError("nothing to say: text is empty")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"engines must be drawn from {ENGINES}, got {engines!r}")
    failures = []
    for engine in engines:
        try:
            if engine == "gtts":
                return _gtts(text, lang, gtts_timeout)
            return _espeak(text, lang, voice)
        except TTSError as exc:
            log.warning("TTS engine %s failed for lang=%s: %s", engine, lang, exc)
            failures.append(f"{engine}: {exc}")
    raise TTSError("no TTS engine could speak the text (" + "; ".join(failures) + ")")


# --- gTTS -----------------------------------------------------------------------------------------------


def _gtts(text: str, lang: str, timeout: float) -> Speech:
    """Fetch MP3 from Google, giving up after `timeout` seconds in total."""
    result: dict = {}

    def work() -> None:
        try:
            buf = io.BytesIO()  # in memory: a failed gTTS.save() leaves a 0-byte file behind
            gTTS(text, lang=lang, timeout=timeout).write_to_fp(buf)
            result["data"] = buf.getvalue()
        except Exception as exc:  # a thread has nowhere to raise; hand the error to the caller
            result["error"] = exc

    # requests' timeout is per socket operation and gTTS makes one request per ~100 characters,
    # so only a deadline on the whole job bounds how long a caller waits.
    worker = threading.Thread(target=work, name="gtts", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TTSError(f"gTTS gave no answer within {timeout:g} s")
    if "error" in result:
        exc = result["error"]
        raise TTSError(f"gTTS failed: {type(exc).__name__}: {exc}") from exc
    data = result.get("data", b"")
    if not _looks_like_mp3(data):
        raise TTSError(f"gTTS returned {len(data)} bytes that are not MP3 audio")
    return Speech(data=data, format="mp3", engine="gtts", voice=lang)


def _looks_like_mp3(data: bytes) -> bool:
    """True if data starts with an ID3 tag or an MPEG audio frame sync."""
    return len(data) > 4 and (data[:3] == b"ID3" or (data[0] == 0xFF and data[1] & 0xE0 == 0xE0))


# --- espeak-ng --------------------------------------------------------------------------------------------

_lock = threading.Lock()  # libespeak-ng keeps global state: one synthesis at a time per process
_library: _EspeakLibrary | None = None
_library_error: str | None = None


def _espeak(text: str, lang: str, voice: str | None) -> Speech:
    """Synthesise a mono 16-bit WAV with espeak-ng (bundled library, else system binary)."""
    candidates = (voice,) if voice else voice_candidates(lang)
    with _lock:
        library = _load_library()
        if library is not None:
            name, pcm = library.speak(text, candidates)
            return Speech(data=_wav(pcm, library.sample_rate), format="wav", engine="espeak-ng", voice=name)
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise TTSError(
            f"espeak-ng is unavailable: the espeakng-loader wheel could not be used ({_library_error}) "
            "and no espeak-ng binary is on PATH; `pip install espeakng-loader` or `apt-get install espeak-ng`"
        )
    return _espeak_binary(exe, text, candidates)


def voice_candidates(lang: str) -> tuple[str, ...]:
    """espeak-ng voice names to try for a language tag such as "en", "es" or "pt_BR"."""
    tag = lang.strip().lower().replace("_", "-")
    primary = tag.split("-")[0]
    names = [*VOICE_ALIASES.get(tag, ()), tag, *VOICE_ALIASES.get(primary, ()), primary]
    return tuple(dict.fromkeys(n for n in names if n))


def _load_library() -> _EspeakLibrary | None:
    """Initialise the bundled library once; remember why if it cannot be used. Call with _lock held."""
    global _library, _library_error
    if _library is None and _library_error is None:
        try:
            _library = _EspeakLibrary()
        except (ImportError, OSError, RuntimeError, TTSError) as exc:
            _library_error = f"{type(exc).__name__}: {exc}"
            log.warning("espeakng-loader unusable, will try the espeak-ng binary: %s", _library_error)
    return _library


class _EspeakLibrary:
    """ctypes binding to the libespeak-ng shipped in the espeakng-loader wheel."""

    def __init__(self) -> None:
        import espeakng_loader

        # get_data_path() raises RuntimeError if the data is missing; load_library() would only print.
        data_dir = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        # The path argument is the directory that *contains* espeak-ng-data.
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_dir.parent).encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise TTSError(f"espeak_Initialize failed ({rate}) with data in {data_dir}")
        self.lib = lib
        self.sample_rate = rate
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference or ctypes frees it under espeak
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, numsamples, events) -> int:
        """Synthesis callback: copy each block of 16-bit samples; 0 means carry on."""
        if wav and numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0

    def speak(self, text: str, voices: tuple[str, ...]) -> tuple[str, bytes]:
        """Return (voice used, native-endian 16-bit mono PCM). Call with _lock held."""
        name = next((v for v in voices if self.lib.espeak_SetVoiceByName(v.encode()) == _EE_OK), None)
        if name is None:
            raise TTSError(f"espeak-ng has no voice for {', '.join(map(repr, voices))}")
        encoded = text.encode("utf-8")
        self._chunks = []
        rc = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        pcm, self._chunks = b"".join(self._chunks), []
        if rc != _EE_OK or not pcm:
            raise TTSError(f"espeak_Synth returned {rc} and {len(pcm)} bytes of audio")
        return name, pcm


def _espeak_binary(exe: str, text: str, voices: tuple[str, ...]) -> Speech:
    """Synthesise with a system espeak-ng executable, trying each voice in turn."""
    for name in voices:
        # Text goes through stdin so a leading "-" is never taken for an option.
        proc = subprocess.run(
            [exe, "-v", name, "-b", "1", "--stdout", "--stdin"],
            input=text.encode("utf-8"), capture_output=True, timeout=60,
        )
        if proc.returncode == 0 and len(proc.stdout) > 44:
            # espeak-ng streams a 44-byte header with placeholder sizes; rewrite it with real ones.
            rate = struct.unpack_from("<I", proc.stdout, 24)[0]
            return Speech(data=_wav(proc.stdout[44:], rate), format="wav", engine="espeak-ng", voice=name)
    raise TTSError(f"espeak-ng binary has no voice for {', '.join(map(repr, voices))}")


def _wav(pcm: bytes, rate: int) -> bytes:
    """Wrap 16-bit mono PCM in a RIFF WAV header."""
    if sys.byteorder == "big":  # WAV is little-endian; the library hands us native order
        import array

        samples = array.array("h", pcm)
        samples.byteswap()
        pcm = samples.tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()
