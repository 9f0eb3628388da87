"""Announcements end to end: real espeak-ng, real ffmpeg, the real media route, played back and measured."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr.store import announcements as ann
from ivr.media import audio, tts
from ivr.media.audio import AudioRejected
from ivr.store.models import Announcement, AuditEntry, Media
from helpers import approved

LANGS = {"en": None, "es": None}
TEXT_V2 = "Update. Card numbers were not taken. Passwords were. Please change your password today."


def play_urls(result):
    return [h.url for h in result.heard if h.kind == "play"]


def fetch(client, url, **kw):
    resp = client.get(url, **kw)
    resp.get_data()
    resp.close()  # send_file keeps the file open until the response is closed, as a WSGI server does
    return resp


def count(hotline, model):
    with hotline.db.read() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar()


def audit_actions(hotline):
    with hotline.db.read() as conn:
        return conn.execute(select(AuditEntry.action).order_by(AuditEntry.id)).scalars().all()


@pytest.fixture
def publish_tts(hotline):
    def _publish(text, lang="en", topic="main", **kw):
        return approved(hotline.db, ann.create_from_text(hotline.db, hotline.config, LANGS, lang=lang, topic=topic,
                                                         text=text, actor="tester", publish=True, reason="test",
                                                         **kw))

    return _publish


@pytest.fixture(scope="module")
def speech_wav():
    return tts.synthesize("This is a recorded announcement about the incident.", "en", engines=("espeak",)).data


def ffmpeg_convert(wav: bytes, fmt: str, *extra: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out"
        src.write_bytes(wav)  # files, not pipes: the M4A muxer needs to seek
        subprocess.run([audio.ffmpeg_exe(), "-v", "error", "-i", str(src), *extra, "-f", fmt, str(dst)], check=True)
        return dst.read_bytes()


def test_a_published_tts_announcement_is_played_to_callers_phone_ready(app, hotline, publish_tts, place_call):
    row = publish_tts(TEXT_V2)
    assert (row["source"], row["engine"], row["status"]) == ("tts", "espeak-ng", "published")
    result = place_call(keys=["9"])
    url = f"/media/{row['media_sha256']}.wav"
    assert play_urls(result) == [url, url]
    resp = fetch(app.test_client(), url)
    assert resp.mimetype == "audio/wav"
    heard = audio.load_phone_wav(resp.data)
    assert resp.data[20:22] == b"\x07\x00"  # WAVE_FORMAT_MULAW
    assert heard.frame_rate == 8000 and heard.channels == 1
    assert abs(len(heard) - row["duration_ms"]) < 50 and 3_000 < row["duration_ms"] < 15_000
    assert -21.5 < heard.dBFS < -16.5 and heard.max_dBFS <= -1.0
    assert len(resp.data) <= 8_000 * row["duration_ms"] / 1000 + 100  # 8 KB per second of audio


def test_the_same_words_are_never_synthesised_twice(hotline, monkeypatch):
    first = ann.speak(hotline.db, hotline.config, TEXT_V2, "en")
    monkeypatch.setattr(tts, "synthesize", lambda *a, **k: pytest.fail("synthesised again"))
    again = ann.speak(hotline.db, hotline.config, "  " + TEXT_V2 + " ", "en")
    assert again.cached and again.sha256 == first.sha256 and again.engine == "espeak-ng"
    # Another language is other words.
    monkeypatch.undo()
    assert ann.speak(hotline.db, hotline.config, TEXT_V2, "es").sha256 != first.sha256


def test_identical_audio_is_stored_once(hotline, speech_wav):
    before = count(hotline, Media)
    a = ann.store_upload(hotline.db, hotline.config, speech_wav)
    b = ann.store_upload(hotline.db, hotline.config, speech_wav)
    assert a.sha256 == b.sha256 and count(hotline, Media) == before + 1


def test_publishing_changes_the_url_and_old_urls_keep_working(app, hotline, publish_tts, place_call):
    client = app.test_client()
    v1 = publish_tts("First statement: we are investigating.")
    old_url = play_urls(place_call(keys=[]))[0]
    old_bytes = fetch(client, old_url).data
    v2 = publish_tts(TEXT_V2)
    new_url = play_urls(place_call(keys=[]))[0]
    assert new_url != old_url and v2["media_sha256"] in new_url and v1["media_sha256"] in old_url
    assert fetch(client, old_url).data == old_bytes  # a call that fetched the old URL still can
    with hotline.db.read() as conn:
        statuses = dict(conn.execute(select(Announcement.id, Announcement.status)
                                     .where(Announcement.id.in_([v1["id"], v2["id"]]))).all())
    assert statuses == {v1["id"]: "archived", v2["id"]: "published"}


def test_media_is_served_with_immutable_caching_headers_and_304(app, publish_tts):
    row = publish_tts(TEXT_V2)
    client = app.test_client()
    url = f"/media/{row['media_sha256']}.wav"
    resp = fetch(client, url)
    assert resp.status_code == 200
    assert resp.headers["ETag"] == f'"{row["media_sha256"]}"'
    assert "immutable" in resp.headers["Cache-Control"] and "max-age=31536000" in resp.headers["Cache-Control"]
    again = fetch(client, url, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert fetch(client, url, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/media/" + "0" * 64 + ".wav").status_code == 404
    assert client.get("/media/../../etc/passwd.wav").status_code == 404
    # A name with a newline after the hash is not a hash (re.match with $ let it through, into a header: 500).
    for name in (f"{row['media_sha256']}%0A", f"{row['media_sha256']}%0D%0A", "0" * 64 + "%0A"):
        for headers in ({"If-None-Match": "*"}, {}):
            assert client.get(f"/media/{name}.wav", headers=headers).status_code == 404, (name, headers)


def test_a_deleted_local_cache_is_rebuilt_from_the_database(app, hotline, publish_tts):
    row = publish_tts(TEXT_V2)
    client = app.test_client()
    url = f"/media/{row['media_sha256']}.wav"
    original = fetch(client, url).data
    cached = hotline.config.media_cache_dir / f"{row['media_sha256']}.wav"
    assert cached.exists()
    for f in hotline.config.media_cache_dir.iterdir():
        f.unlink()
    hotline.config.media_cache_dir.rmdir()
    assert fetch(client, url).data == original and cached.exists()


def test_rollback_republishes_an_earlier_version_in_one_step(hotline, publish_tts, place_call):
    v1 = publish_tts("Version one.")
    v2 = publish_tts("Version two.")
    v3 = publish_tts("Version three.")
    back = ann.rollback(hotline.db, lang="en", topic="main", actor="tester", reason="v3 was wrong")
    assert back["id"] == v2["id"]
    assert v2["media_sha256"] in play_urls(place_call(keys=[]))[0]
    first = ann.rollback(hotline.db, lang="en", topic="main", to_version=v1["version"], actor="tester")
    assert first["id"] == v1["id"] and v1["media_sha256"] in play_urls(place_call(keys=[]))[0]
    with hotline.db.read() as conn:
        published = conn.execute(select(Announcement.id).where(
            Announcement.language == "en", Announcement.topic == "main", Announcement.status == "published")).all()
    assert published == [(v1["id"],)]
    assert v3["status"] == "published"  # it was, before the rollbacks
    with pytest.raises(ann.AnnouncementError, match="no en/main version 99"):
        ann.rollback(hotline.db, lang="en", topic="main", to_version=99, actor="tester")


def test_every_announcement_change_is_audited(hotline, publish_tts):
    publish_tts("Audited words.")
    ann.rollback(hotline.db, lang="en", topic="main", actor="tester", reason="undo")
    with hotline.db.read() as conn:
        rows = conn.execute(select(AuditEntry).where(AuditEntry.action.like("announcement.%"))
                            .order_by(AuditEntry.id)).all()
    assert [r.action for r in rows][-4:] == ["announcement.create", "announcement.publish_requested",
                                             "announcement.approve", "announcement.publish"]
    assert rows[-1].actor == "tester" and rows[-1].reason == "undo" and rows[-1].to_value == "version 1"


@pytest.mark.parametrize("fmt,args", [("mp3", ["-b:a", "32k"]), ("ogg", ["-c:a", "libvorbis"]),
                                      ("ipod", ["-c:a", "aac"]), ("wav", [])])
def test_uploads_in_every_accepted_format_become_phone_ready(app, hotline, speech_wav, fmt, args):
    data = ffmpeg_convert(speech_wav, fmt, *args)
    row = ann.create_from_audio(hotline.db, hotline.config, LANGS, data=data, lang="es", topic="details",
                                actor="tester", publish=True)
    heard = audio.load_phone_wav(fetch(app.test_client(), f"/media/{row['media_sha256']}.wav").data)
    assert heard.frame_rate == 8000 and 1_500 < len(heard) < 6_000


def _silence_wav(seconds: float) -> bytes:
    return subprocess.run(
        [audio.ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds),
         "-f", "wav", "pipe:1"], capture_output=True, check=True).stdout


@pytest.mark.parametrize("case,reason", [("garbage", "undecodable"), ("silent", "silent"), ("too_long", "too_long"),
                                         ("too_big", "too_big"), ("empty", "empty")])
def test_bad_uploads_are_refused_whole_and_leave_nothing(hotline, speech_wav, case, reason):
    cfg = hotline.config
    data = {"garbage": b"this is not audio at all" * 100, "silent": _silence_wav(3), "empty": b"",
            "too_long": speech_wav, "too_big": speech_wav}[case]
    if case == "too_long":
        cfg = cfg.with_overrides(audio_max_seconds=1.0)
    if case == "too_big":
        cfg = cfg.with_overrides(upload_max_bytes=1000)
    before = (count(hotline, Announcement), count(hotline, Media), len(audit_actions(hotline)))
    with pytest.raises(AudioRejected) as err:
        ann.create_from_audio(hotline.db, cfg, LANGS, data=data, lang="en", topic="main", actor="t", publish=True)
    assert err.value.reason == reason
    assert (count(hotline, Announcement), count(hotline, Media), len(audit_actions(hotline))) == before


def test_unknown_language_or_topic_is_refused_before_any_work(hotline, monkeypatch):
    monkeypatch.setattr(tts, "synthesize", lambda *a, **k: pytest.fail("should not synthesise"))
    with pytest.raises(ann.AnnouncementError, match="language 'fr' is not configured"):
        ann.create_from_text(hotline.db, hotline.config, LANGS, lang="fr", topic="main", text="x", actor="t")
    with pytest.raises(ann.AnnouncementError, match="topic must be one of"):
        ann.create_from_text(hotline.db, hotline.config, LANGS, lang="en", topic="weather", text="x", actor="t")


def test_a_caller_in_a_language_without_audio_gets_the_default_language(hotline, publish_tts, place_call):
    from sqlalchemy import update

    from ivr.store.state import bump_content

    row = publish_tts(TEXT_V2)
    with hotline.db.write() as conn:
        conn.execute(update(Announcement).where(Announcement.language == "es", Announcement.topic == "main")
                     .values(status="archived"))
        bump_content(conn)
    result = place_call(keys=["3", "2"])  # switch to Spanish
    assert row["media_sha256"] in play_urls(result)[-1]


def test_a_call_in_progress_hears_the_new_version_after_a_publish(app, hotline, publish_tts):
    from ivr.tools.simulate import FlaskTransport, SimulatedCall

    v1 = publish_tts("Before the update.")
    call = SimulatedCall(FlaskTransport(app), "test-auth-token-0123456789abcdef", keys=["9"])
    first = call.request("/voice/incoming")
    assert v1["media_sha256"].encode() in first[2]
    v2 = publish_tts("After the update.")
    status, _, body = call.request("/voice/menu?l=en&a=0&s=1", {"Digits": "9"})
    assert status == 200 and v2["media_sha256"].encode() in body


def test_with_the_database_down_audio_announcements_fall_back_to_their_text(hotline, publish_tts, place_call):
    from test_degraded import database_down

    publish_tts(TEXT_V2)
    place_call(keys=[])
    with database_down(hotline):
        result = place_call(keys=[])
    assert TEXT_V2 in result.said() and not play_urls(result)


def test_when_google_hangs_the_announcement_is_spoken_offline_within_the_timeout(hotline, monkeypatch):
    """gTTS's HTTP boundary is the one thing faked: a local server that accepts and never answers."""
    import socket
    import time

    from test_tts import point_gtts_at

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        point_gtts_at(monkeypatch, f"http://127.0.0.1:{sock.getsockname()[1]}")
        cfg = hotline.config.with_overrides(tts_engines=("gtts", "espeak"), gtts_timeout=0.5)
        started = time.monotonic()
        row = ann.create_from_text(hotline.db, cfg, LANGS, lang="en", topic="main", text="Google is not answering.",
                                   actor="tester", publish=True)
        elapsed = time.monotonic() - started
    assert row["engine"] == "espeak-ng" and row["media_sha256"]
    assert elapsed < 0.5 + 1.5  # the timeout, plus the offline synthesis and the pipeline


def test_with_google_reachable_gtts_speaks_and_the_version_says_so(hotline, monkeypatch):
    from test_tts import FakeGoogle, google_body, point_gtts_at

    wav = tts.synthesize("Spoken by the stand-in for Google.", "en", engines=("espeak",)).data
    google = FakeGoogle(body=google_body(ffmpeg_convert(wav, "mp3", "-b:a", "32k")))
    try:
        point_gtts_at(monkeypatch, google.url)
        cfg = hotline.config.with_overrides(tts_engines=("gtts", "espeak"))
        row = ann.create_from_text(hotline.db, cfg, LANGS, lang="en", topic="main", text="Spoken by Google.",
                                   actor="tester", publish=True)
    finally:
        google.close()
    assert row["engine"] == "gtts" and 1_000 < row["duration_ms"] < 6_000
    assert len(google.requests) == 1
