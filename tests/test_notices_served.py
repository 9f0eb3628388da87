"""A notice campaign as deployed: `ivr notify` and `ivr serve` (its `ivr background` sends) against a local
stand-in for Twilio's Messages API, with Twilio's delivery reports and replies signed as Twilio signs them."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from conftest import AUTH_TOKEN, IVR, Server, free_port, server_env
from helpers import wait_for
from ivr.store.db import Database
from ivr.store.models import NoticeRecipient
from ivr.store.notices import campaign_figures
from notices_helpers import ACCOUNT, SENDER, codes_sent, list_file, numbers
from stubs import TwilioMessages

pytestmark = pytest.mark.slow
RATE = 200


def ivr(env, *args, check=True):
    result = subprocess.run([str(IVR), *args], env=env, capture_output=True, text=True, timeout=120)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def signed(url: str, params: dict) -> requests.Response:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)


def background_pid(srv) -> int | None:
    out = subprocess.run(["pgrep", "-P", str(srv.caller_master())], capture_output=True, text=True).stdout
    for pid in map(int, out.split()):
        try:
            if b"background" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


def test_a_campaign_is_sent_once_each_through_a_kill_a_pause_a_stop_and_quiet_hours(config, tmp_path):
    stub = TwilioMessages(ACCOUNT)
    port = free_port()
    env = server_env(config, TWILIO_ACCOUNT_SID=ACCOUNT, IVR_TWILIO_API_URL=stub.origin, TWILIO_SMS_FROM=SENDER,
                     IVR_PUBLIC_URL=f"http://127.0.0.1:{port}", IVR_HOTLINE_NUMBER="+12025550199",
                     IVR_NOTICE_URL="https://example.com/notice", IVR_JOB_LEASE_SECONDS="3",
                     IVR_NOTICE_SETTLE_SECONDS="2")
    statement = tmp_path / "en.txt"
    statement.write_text("We lost some of your data. Call {hotline}.")
    plan_args = ["notify", "plan", "--name", "card data", "--statement", f"en={statement}", "--rate", str(RATE)]

    # A bad list: every bad row named by its line, and nothing planned.
    bad = ivr(env, *plan_args, str(list_file(tmp_path, [numbers(1)[0], "12345", "+12025550123,xx"],
                                             header=None)), check=False)
    assert bad.returncode == 1 and "line 2: number" in bad.stdout and "line 3: language 'xx'" in bad.stdout
    assert "nothing was planned" in bad.stdout
    assert "no campaigns" in ivr(env, "notify", "status").stdout

    # 3,000 in New York (+1202) and 20 in Los Angeles (+1213), where it is quiet now.
    los_angeles = datetime.now(ZoneInfo("America/Los_Angeles"))
    quiet = f"{los_angeles - timedelta(hours=1):%H:%M}-{los_angeles + timedelta(hours=1):%H:%M}"
    new_york, quiet_ones = numbers(3000), numbers(20, area=213)
    planned = ivr(env, *plan_args, "--quiet-hours", quiet, str(list_file(tmp_path, new_york + quiet_ones,
                                                                         header=None)))
    assert "3,020 recipients" in planned.stdout
    cid = int(re.search(r"campaign (\d+) planned", planned.stdout)[1])  # PostgreSQL does not reuse the bad one's
    srv = Server(env, port=port)
    try:
        ivr(env, "notify", "send", str(cid), "--reason", "disclosure day")
        assert wait_for(lambda: len(stub.created) >= 600, timeout=60)
        # The last on the list replies STOP before their turn (to our number: Twilio posts it to /sms/inbound).
        inbound = {"MessageSid": "SM" + "2" * 32, "AccountSid": ACCOUNT, "From": new_york[-1], "To": SENDER,
                   "Body": "STOP", "NumMedia": "0", "ApiVersion": "2010-04-01"}
        assert signed(srv.url + "/sms/inbound", inbound).status_code == 200
        # The sender is killed mid-run; gunicorn's master starts another, which takes over after the lease.
        os.kill(background_pid(srv), signal.SIGKILL)
        before = len(stub.created)
        assert wait_for(lambda: len(stub.created) > before + 200, timeout=60), "no sending after the kill"
        ivr(env, "notify", "pause", str(cid), "--reason", "check the wording")
        time.sleep(2.0)  # at most one batch in flight when paused
        paused_at = len(stub.created)
        time.sleep(3.0)
        assert len(stub.created) == paused_at
        assert "paused" in ivr(env, "notify", "status", str(cid)).stdout
        ivr(env, "notify", "resume", str(cid))
        wanted = set(new_york[:-1])
        assert wait_for(lambda: {m["to"] for m in stub.created} >= wanted, timeout=120)
        time.sleep(2.0)  # the quiet ones stay quiet: rounds enough to have sent them were they due

        texted = [m["to"] for m in stub.created]
        assert sorted(texted) == sorted(wanted), "someone was texted twice, or someone who should not be"
        codes = codes_sent(stub, config.secret_key)
        assert len({c for cs in codes.values() for c in cs}) == len(wanted)  # everyone their own reference
        # The rate was never exceeded across the kill and the restart (arrivals may bunch a little).
        when = stub.when
        busiest = max(sum(1 for t in when[i:i + RATE * 2] if t - when[i] < 1.0) for i in range(len(when)))
        assert busiest <= RATE * 1.05 + 3, busiest

        # Twilio's delivery reports, signed, update each recipient; the figures say so everywhere.
        for message in stub.created[:50]:
            report = {"MessageSid": message["sid"], "SmsSid": message["sid"], "MessageStatus": "delivered",
                      "AccountSid": ACCOUNT, "From": SENDER, "To": message["to"], "ApiVersion": "2010-04-01"}
            url = message["status_callback"]
            assert url.startswith(srv.url + "/sms/status?r=")
            assert signed(url, report).status_code == 200
        assert requests.post(url, data=report, timeout=10).status_code == 403  # unsigned
        db = Database(config.db_url)
        assert wait_for(lambda: campaign_figures(db, cid)["counts"]["delivered"] == 50, timeout=20)
        figures = campaign_figures(db, cid)
        assert figures["counts"] == {"queued": 20, "sending": 0, "sent": 2949, "delivered": 50, "failed": 0,
                                     "opted_out": 1, "skipped": 0}
        status = ivr(env, "notify", "status", str(cid)).stdout
        assert "3,000/3,020" in status and "delivered 50" in status and "opted out 1" in status

        ivr(env, "notify", "cancel", str(cid), "--reason", "the rest are told by post")
        with db.read() as conn:
            rows = conn.execute(select(NoticeRecipient.state, NoticeRecipient.number_sealed)).all()
        assert all(number is None for _, number in rows)
        assert sum(1 for state, _ in rows if state == "skipped") == 20
        db.dispose()
    finally:
        srv.stop()
        stub.close()
