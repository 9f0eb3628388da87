"""Each limit has one wording, naming its setting, on every surface (ivr/core/limits.py)."""
from __future__ import annotations

from ivr.store.users import add_user, create_token
from helpers import console_sign_in

TOLD = "the upload is larger than the limit of 2.5 MB (IVR_UPLOAD_MAX_BYTES)"


def _multipart(n_bytes: int, **fields: str) -> bytes:
    """A form with a file of n_bytes, built by hand (the test client would spool a large one to a file)."""
    parts = [f"--x\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    return (b"".join(parts) + b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\n"
            b"\r\n" + b"\0" * n_bytes + b"\r\n--x--\r\n")


def test_the_upload_limit_is_said_one_way_with_its_setting(config):
    from ivr.app import create_app

    app = create_app(config.with_overrides(upload_max_bytes=2_500_000))
    try:
        hotline = app.extensions["ivr"]
        add_user(hotline.db, "ada", "admin", password="correct horse battery", actor="test")
        api = {"Authorization": "Bearer " + create_token(hotline.db, "ada", actor="test")}
        client = app.test_client()
        # The whole request over the limit: refused before it is read, by the API and by the console.
        whole = client.post("/api/announcements/upload", headers=api, data=_multipart(4_000_000),
                            content_type="multipart/form-data; boundary=x")
        assert whole.status_code == 413 and whole.get_json()["error"] == TOLD
        console_sign_in(client, "ada", "correct horse battery")
        page = client.get("/console/announcements").get_data(as_text=True)
        assert "at most 2.5 MB (IVR_UPLOAD_MAX_BYTES)" in page
        form = client.post("/console/announcements/upload", data=_multipart(4_000_000),
                           content_type="multipart/form-data; boundary=x")
        assert form.status_code == 413 and TOLD[0].upper() + TOLD[1:] in form.get_data(as_text=True)
        # The file alone over the limit (the request around it within): the same sentence.
        file_only = client.post("/api/announcements/upload", headers=api,
                                data=_multipart(3_000_000, lang="en", reason="statement"),
                                content_type="multipart/form-data; boundary=x")
        assert file_only.status_code == 422 and TOLD in file_only.get_json()["error"]
    finally:
        app.extensions["ivr"].close()


def test_sizes_are_said_in_the_largest_decimal_unit_they_reach():
    from ivr.core.limits import size

    assert [size(n) for n in (999, 1_000, 1_000_000, 2_500_000)] == ["999 bytes", "1 kB", "1 MB", "2.5 MB"]
    # Never "1000 kB": what rounds to it is said in MB.
    assert [size(n) for n in (999_949, 999_951, 999_999, 1_049_999, 1_050_000)] == [
        "999.9 kB", "1 MB", "1 MB", "1 MB", "1.1 MB"]
