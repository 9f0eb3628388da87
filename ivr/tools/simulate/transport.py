"""How a simulated call's requests reach the app: in-process (a Flask test client) or over HTTP."""
from __future__ import annotations


class Transport:
    """POSTs a webhook and GETs media, answering (status, content type, body)."""

    base = "http://localhost"

    def post(self, url: str, params: dict, headers: dict) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def get(self, url: str) -> tuple[int, str, bytes]:
        raise NotImplementedError


class FlaskTransport(Transport):
    def __init__(self, app):
        self.client = app.test_client()

    def post(self, url, params, headers):
        resp = self.client.post(url, data=params, headers=headers)
        return resp.status_code, resp.mimetype or "", resp.get_data()

    def get(self, url):
        resp = self.client.get(url)
        data = resp.get_data()
        resp.close()
        return resp.status_code, resp.mimetype or "", data


class HttpTransport(Transport):
    def __init__(self, base: str, timeout: float = 15.0):
        import requests

        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.timeout = timeout  # Twilio waits at most 15 s for an answer

    def post(self, url, params, headers):
        import requests

        try:
            resp = self.session.post(url, data=params, headers=headers, timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:  # what Twilio would see as a failed request
            return 599, "", str(exc).encode()
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content

    def get(self, path):
        import requests

        try:
            resp = self.session.get(self.base + path, timeout=self.timeout)
        except requests.RequestException as exc:
            return 599, "", str(exc).encode()
        return resp.status_code, resp.headers.get("Content-Type", "").split(";")[0], resp.content
