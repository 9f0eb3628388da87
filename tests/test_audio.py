"""ivr.media.audio with real ffmpeg and real espeak-ng speech; nothing is faked."""
from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tempfile

import pytest

from ivr.media import audio, tts

# Through ivr.media.audio: importing pydub directly warns "Couldn't find ffmpeg", an error under filterwarnings.
AudioSegment = audio.AudioSegment
detect_leading_silence = audio.detect_leading_silence

SENTENCE = "Thank you for calling. We are sorry that your information was exposed. Please stay on the line."


def run_ffmpeg(*args: str, data: bytes | None = None, suffix: str = ".wav") -> bytes:
    """Run the real ffmpeg binary, optionally on `data`, and return the file it writes."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [audio.ffmpeg_exe(), "-nostdin", "-loglevel", "error"]
        if data is not None:
            with open(os.path.join(tmp, "in"), "wb") as f:
                f.write(data)
            cmd += ["-i", os.path.join(tmp, "in")]
        out = os.path.join(tmp, "out" + suffix)
        subprocess.run([*cmd, *args, "-y", out], check=True)
        with open(out, "rb") as f:
            return f.read()


def sine(seconds: float, dbfs: float = -21.0) -> bytes:
    """A 440 Hz tone at 16 kHz as WAV; lavfi's sine is -21 dBFS RMS, shifted to `dbfs`."""
    return run_ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
                      "-af", f"volume={dbfs + 21.0:.2f}dB", "-c:a", "pcm_s16le")


def wav_header(wav: bytes) -> dict:
    """Fields of the fmt chunk and the data length of a RIFF WAV, parsed by hand."""
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert struct.unpack_from("<I", wav, 4)[0] == len(wav) - 8
    pos, info = 12, {}
    while pos + 8 <= len(wav):
        cid, size = wav[pos:pos + 4], struct.unpack_from("<I", wav, pos + 4)[0]
        if cid == b"fmt ":
            tag, ch, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", wav, pos + 8)
            info.update(tag=tag, channels=ch, rate=rate, byte_rate=byte_rate, bits=bits)
        elif cid == b"data":
            info.update(data_len=size, header_len=pos + 8)
            assert pos + 8 + size == len(wav)
        pos += 8 + size + (size & 1)
    return info


@pytest.fixture(scope="module")
def speech_wav() -> bytes:
    return tts.synthesize(SENTENCE, "en", engines=("espeak",)).data


@pytest.fixture(scope="module")
def speech(speech_wav) -> AudioSegment:
    return audio.decode(speech_wav)


@pytest.fixture(scope="module")
def phone(speech) -> audio.PhoneAudio:
    return audio.make_phone_ready(speech)


def test_ffmpeg_exe_is_runnable_and_configures_pydub():
    exe = audio.ffmpeg_exe()
    assert os.access(exe, os.X_OK)
    assert AudioSegment.converter == exe


def test_speech_becomes_8khz_mono_mulaw_wav(phone):
    h = wav_header(phone.wav)
    assert (h["tag"], h["channels"], h["rate"], h["bits"], h["byte_rate"]) == (7, 1, 8000, 8, 8000)
    assert h["header_len"] < 100
    assert h["data_len"] == phone.duration_ms * 8 or abs(h["data_len"] - phone.duration_ms * 8) < 8
    assert 2000 < phone.duration_ms < 10_000  # a sentence of speech
    assert phone.sha256 == hashlib.sha256(phone.wav).hexdigest()
    assert phone.content_type == "audio/wav"


def test_loudness_is_on_target_and_peak_under_headroom(phone):
    assert abs(phone.dbfs - (-19.0)) < 1.0
    assert phone.peak_dbfs <= -1.0
    heard = audio.load_phone_wav(phone.wav)  # the reported numbers are what the caller hears
    assert abs(heard.dBFS - phone.dbfs) < 0.05 and heard.max_dBFS <= -1.0


@pytest.mark.parametrize("gain_db", [-30.0, -6.0])
def test_quiet_speech_is_raised_to_target(speech, gain_db):
    result = audio.make_phone_ready(speech.apply_gain(gain_db))
    assert abs(result.dbfs - (-19.0)) < 1.0 and result.peak_dbfs <= -1.0


def test_low_crest_signal_reaches_target_exactly():
    # A tone has 3 dB crest factor, so no limiting is needed and the level is exact.
    result = audio.make_phone_ready(audio.decode(sine(2, dbfs=-35)), target_dbfs=-16.0)
    assert abs(result.dbfs - (-16.0)) < 0.3 and result.peak_dbfs <= -1.0


def test_custom_headroom_is_respected(speech):
    result = audio.make_phone_ready(speech, target_dbfs=-12.0, peak_headroom_db=3.0)
    assert result.peak_dbfs <= -3.0 and result.dbfs > -16.0


def test_load_phone_wav_decodes_like_ffmpeg(phone):
    ours = audio.load_phone_wav(phone.wav)
    theirs = run_ffmpeg("-f", "s16le", "-c:a", "pcm_s16le", data=phone.wav, suffix=".raw")
    assert (ours.frame_rate, ours.channels, ours.sample_width) == (8000, 1, 2)
    assert ours.raw_data == theirs


def test_leading_and_trailing_silence_is_trimmed(speech, phone):
    padded = AudioSegment.silent(2000, frame_rate=speech.frame_rate) + speech + AudioSegment.silent(
        2000, frame_rate=speech.frame_rate)
    result = audio.make_phone_ready(padded)
    # The 4 s of padding is gone; at most the 150 ms pads on each side are added to the speech.
    assert phone.duration_ms - 20 <= result.duration_ms <= len(speech) + 2 * 150 + 20
    heard = audio.load_phone_wav(result.wav)
    lead = detect_leading_silence(heard, silence_threshold=-50.0, chunk_size=10)
    tail = detect_leading_silence(heard.reverse(), silence_threshold=-50.0, chunk_size=10)
    assert 100 <= lead <= 250 and tail <= 400  # ~150 ms pad kept; espeak's own trailing fade counts too


@pytest.mark.parametrize("fmt, args", [
    ("mp3", ["-c:a", "libmp3lame", "-b:a", "32k"]),
    ("ogg", ["-c:a", "libvorbis", "-ac", "2"]),  # stereo, to prove the downmix
    ("m4a", ["-c:a", "aac", "-b:a", "64k"]),
])
def test_compressed_uploads_are_accepted(speech_wav, speech, fmt, args):
    encoded = run_ffmpeg(*args, data=speech_wav, suffix="." + fmt)
    decoded = audio.decode(encoded)
    assert abs(len(decoded) - len(speech)) < 120  # codec padding only
    result = audio.make_phone_ready(decoded)
    assert wav_header(result.wav)["channels"] == 1
    assert 2000 < result.duration_ms < 10_000 and abs(result.dbfs - (-19.0)) < 1.0


@pytest.mark.parametrize("seg", [
    AudioSegment.silent(3000, frame_rate=8000),
    "quiet tone",
])
def test_silence_is_rejected(seg):
    if seg == "quiet tone":
        seg = audio.decode(sine(3, dbfs=-65))
    with pytest.raises(audio.AudioRejected, match="silent") as exc:
        audio.make_phone_ready(seg)
    assert exc.value.reason == "silent"


def test_too_long_after_trimming_is_rejected():
    with pytest.raises(audio.AudioRejected, match="too_long.*limit is 2 s") as exc:
        audio.make_phone_ready(audio.decode(sine(3)), max_seconds=2)
    assert exc.value.reason == "too_long"


def test_length_limit_applies_after_trimming():
    tone = audio.decode(sine(1.5))
    padded = tone + AudioSegment.silent(5000, frame_rate=tone.frame_rate)
    result = audio.make_phone_ready(padded, max_seconds=2)
    assert 1500 <= result.duration_ms <= 1700


def test_decoding_stops_at_the_duration_cap():
    with pytest.raises(audio.AudioRejected) as exc:
        audio.decode(sine(4), max_decoded_seconds=2)
    assert exc.value.reason == "too_long"


@pytest.mark.parametrize("data", [b"this is not audio, it is a text file\n" * 50,
                                  b"RIFF\x00\x00\x00\x00WAVEjunk"])
def test_garbage_is_rejected_as_undecodable(data):
    with pytest.raises(audio.AudioRejected, match="undecodable") as exc:
        audio.decode(data)
    assert exc.value.reason == "undecodable"


def test_too_big_is_rejected_before_decoding():
    # Garbage would be "undecodable" if ffmpeg ever saw it; "too_big" proves the size check comes first.
    with pytest.raises(audio.AudioRejected, match=r"too_big.*larger than the limit of 1 kB \(IVR_UPLOAD_MAX_BYTES\)") as exc:
        audio.decode(b"x" * 1001, max_bytes=1000)
    assert exc.value.reason == "too_big"


def test_empty_upload_is_rejected():
    with pytest.raises(audio.AudioRejected, match="empty") as exc:
        audio.decode(b"")
    assert exc.value.reason == "empty"
    assert isinstance(exc.value, ValueError)


def test_an_upload_that_is_a_playlist_fetches_nothing_and_reads_no_local_file(speech_wav, tmp_path):
    """ffmpeg follows playlists: an "upload" that is an HLS playlist naming a URL would make the server fetch
    it (server-side request forgery), and one naming a file would publish that file. (Recent ffmpeg builds
    also refuse some of these by themselves; the hotline does not rely on the build.)"""
    from stubs import StubHost

    secret = tmp_path / "server-side.wav"
    secret.write_bytes(speech_wav)
    target = StubHost({"/segment.wav": (200, {"Content-Type": "audio/wav"}, speech_wav)})
    head = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
    playlists = [head + f"{target.origin}/segment.wav\n#EXT-X-ENDLIST\n", head + f"{secret}\n#EXT-X-ENDLIST\n",
                 head + f"file:{secret}\n#EXT-X-ENDLIST\n", f"ffconcat version 1.0\nfile 'file:{secret}'\n",
                 f"ffconcat version 1.0\nfile '{secret}'\n"]
    try:
        for playlist in playlists:
            with pytest.raises(audio.AudioRejected, match="not a playable audio file"):
                audio.decode(playlist.encode())
        assert target.requests == []
    finally:
        target.close()


def test_only_the_accepted_audio_formats_are_read(speech_wav):
    """ffmpeg reads hundreds of formats, each a parser exposed to whoever uploads; the hotline reads the
    ones people record and export audio in (see INPUT_FORMATS), and says which they are."""
    avi = run_ffmpeg("-c:a", "pcm_s16le", data=speech_wav, suffix=".avi")  # a container ffmpeg would read
    with pytest.raises(audio.AudioRejected, match="not a playable audio file.*WAV, MP3") as refused:
        audio.decode(avi)
    assert refused.value.reason == "undecodable"
    flac = run_ffmpeg("-c:a", "flac", data=speech_wav, suffix=".flac")
    assert abs(len(audio.decode(flac)) - len(audio.decode(speech_wav))) < 50
