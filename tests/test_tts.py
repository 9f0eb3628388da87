"""ivr.media.tts against the real espeak-ng engine; only Google's HTTP endpoint is replaced by local servers."""
from __future__ import annotations

import base64
import io
import socket
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gtts.tts
import pytest

from ivr.media import audio, tts

SENTENCE = "Hello, you have reached the data breach hotline. Please listen carefully."


def wav_info(data: bytes) -> tuple[int, int, int, float]:
    """(channels, sample width, rate, seconds) of a PCM WAV."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes() / w.getframerate()


class FakeGoogle:
    """Local stand-in for translate.google.com's batchexecute endpoint."""

    def __init__(self, status: int = 200, body: bytes = b"") -> None:
        self.status, self.body, self.requests = status, body, []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append((self.path, self.rfile.read(length).decode()))
                self.send_response(fake.status)
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)

            def log_message(self, *args):  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def google_body(mp3: bytes) -> bytes:
    """A batchexecute response in the shape gTTS parses (gtts/tts.py: stream())."""
    payload = base64.b64encode(mp3).decode()
    line = '[["wrb.fr","jQ1olc","[\\"' + payload + '\\"]",null,null,null,"generic"]]'
    return (")]}'\n\n" + line + "\n").encode()


def point_gtts_at(monkeypatch, base_url: str) -> None:
    """Redirect gTTS's URL builder (its HTTP boundary) to a local server."""
    monkeypatch.setattr(gtts.tts, "_translate_url", lambda tld="com", path="": f"{base_url}/{path}")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake_google(monkeypatch):
    server = FakeGoogle()
    point_gtts_at(monkeypatch, server.url)
    yield server
    server.close()


@pytest.fixture
def silent_google(monkeypatch):
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    point_gtts_at(monkeypatch, f"http://127.0.0.1:{sock.getsockname()[1]}")
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def espeak_mp3(tmp_path_factory) -> bytes:
    """A real MP3 of real speech, for the fake Google to serve."""
    import subprocess

    d = tmp_path_factory.mktemp("mp3")
    (d / "in.wav").write_bytes(tts.synthesize(SENTENCE, "en", engines=("espeak",)).data)
    subprocess.run([audio.ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(d / "in.wav"),
                    "-c:a", "libmp3lame", "-b:a", "32k", "-y", str(d / "out.mp3")], check=True)
    return (d / "out.mp3").read_bytes()


def test_espeak_speaks_an_english_sentence():
    speech = tts.synthesize(SENTENCE, "en", engines=("espeak",))
    assert (speech.format, speech.engine) == ("wav", "espeak-ng")
    assert speech.voice.startswith("en")
    channels, width, rate, seconds = wav_info(speech.data)
    assert (channels, width, rate) == (1, 2, 22050)
    assert 1 < seconds < 10
    assert audio.decode(speech.data).dBFS > -35  # audible speech, not silence


def test_spanish_uses_a_spanish_voice():
    speech = tts.synthesize("Hola, gracias por llamar a la línea de ayuda.", "es", engines=("espeak",))
    assert speech.voice in ("es-419", "es")
    assert 1 < wav_info(speech.data)[3] < 10


def test_explicit_voice_and_other_languages_by_name():
    rp = tts.synthesize("Good morning.", "en", engines=("espeak",), voice="en-gb-x-rp")
    assert rp.voice == "en-gb-x-rp"
    assert tts.synthesize("Good morning.", "en-GB", engines=("espeak",)).voice == "en"
    assert tts.synthesize("Bonjour.", "fr", engines=("espeak",)).voice == "fr"


def test_unknown_language_is_a_clear_error():
    with pytest.raises(tts.TTSError, match="no voice for 'xx'"):
        tts.synthesize("Hello.", "xx", engines=("espeak",))


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="empty"):
        tts.synthesize("   ", "en")


def test_repeated_calls_from_many_threads_all_give_whole_sentences():
    # espeak-ng carries pitch state between calls, so bytes differ slightly from call to call;
    # without the lock, concurrent calls would swap or lose chunks and lengths would be far apart.
    reference = wav_info(tts.synthesize(SENTENCE, "en", engines=("espeak",)).data)[3]
    results, errors = [], []

    def worker():
        try:
            for _ in range(3):
                results.append(wav_info(tts.synthesize(SENTENCE, "en", engines=("espeak",)).data)[3])
        except Exception as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 12 and all(abs(r - reference) < 0.02 * reference for r in results)


def test_google_is_never_contacted_for_espeak_only(fake_google):
    tts.synthesize(SENTENCE, "en", engines=("espeak",))
    assert fake_google.requests == []


def test_unanswering_google_falls_back_within_the_deadline(silent_google, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    speech = tts.synthesize(SENTENCE, "en", gtts_timeout=0.5)
    elapsed = time.monotonic() - start
    assert speech.engine == "espeak-ng"
    assert elapsed < 0.5 + 0.75
    assert any(r.levelname == "WARNING" and "gtts" in r.getMessage() for r in caplog.records)
    assert list(tmp_path.iterdir()) == []  # no 0-byte MP3 left behind


def test_google_answer_is_used(fake_google, espeak_mp3):
    fake_google.body = google_body(espeak_mp3)
    speech = tts.synthesize(SENTENCE, "en")
    assert (speech.format, speech.engine, speech.data) == ("mp3", "gtts", espeak_mp3)
    path, body = fake_google.requests[0]
    assert path == "/_/TranslateWebserverUi/data/batchexecute" and "breach" in body
    assert 1000 < len(audio.decode(speech.data)) < 10_000


@pytest.mark.parametrize("status, body", [(500, b"upstream error"), (200, b")]}'\n\n[]\n"), (200, b"")])
def test_bad_google_answers_fall_back_to_espeak(fake_google, status, body, caplog):
    fake_google.status, fake_google.body = status, body
    speech = tts.synthesize(SENTENCE, "en")
    assert speech.engine == "espeak-ng"
    assert len(fake_google.requests) == 1
    assert any(r.levelname == "WARNING" for r in caplog.records)
