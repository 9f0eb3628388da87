"""The notice sender: a thread of `ivr background` that texts each campaign's recipients through Twilio's
Messages API, at the campaign's rate, outside quiet hours, once each (ivr/store/notice_sends.py records
before and after every REST call).

One process sends a campaign at a time (a lease in the database; another server's sender takes over within
a lease if this one dies), and only one process sends for a given Twilio sender, so the rate, counted here
in memory by `limits`' moving window, is the sender's whole rate across servers.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from twilio.base.exceptions import TwilioRestException

from ivr.core import notices as rules
from ivr.core.reference_codes import code_hash
from ivr.store import notice_sends as sends
from ivr.store import notices as store
from ivr.store.jobs import new_token
from ivr.store.models import utcnow
from ivr.store.verification import reference_key
from ivr.worker.sms import rest_client

log = logging.getLogger("ivr.notices")
REST_TIMEOUT_S = 10  # the REST client's own (ivr/worker/sms.py)
RESOLVE_EVERY_S = 10.0
GROUPS_EVERY_S = 60.0


def rate_item(rate_per_second: float):
    """The campaign's rate as a `limits` item: whole numbers per second, anything slower per minute."""
    if rate_per_second >= 1 and float(rate_per_second).is_integer():
        return RateLimitItemPerSecond(int(rate_per_second))
    return RateLimitItemPerMinute(max(1, int(rate_per_second * 60)))


class RateGate:
    """Blocks until one more text fits in the sender's rate (a moving window: never more than the rate in
    any second, not only in whole seconds)."""

    def __init__(self):
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._lock = threading.Lock()

    def wait(self, rate_per_second: float, sender: str, stop: threading.Event) -> bool:
        item = rate_item(rate_per_second)
        while not stop.is_set():
            with self._lock:
                if self._limiter.hit(item, sender):
                    return True
                reset = self._limiter.get_window_stats(item, sender).reset_time
            time.sleep(min(max(reset - time.time(), 0.0005), 0.5))
        return False


class NoticeSender:
    def __init__(self, hotline, stop: threading.Event):
        self.cfg, self.db, self.stop = hotline.config, hotline.db, stop
        self.token = new_token()
        self.lease_s = max(self.cfg.job_lease_seconds, 2.0)
        self.gate = RateGate()
        self.pool = ThreadPoolExecutor(max(self.cfg.notice_threads, 1), thread_name_prefix="notice-send")
        self._clients = threading.local()
        self._groups: dict[int, tuple[float, list[str]]] = {}
        self._next_resolve: dict[int, float] = {}
        self._held: set[int] = set()
        self.key = reference_key(self.cfg.secret_key)

    # -- the loop ----------------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("notice sender started (%s)", self.token)
        while not self.stop.is_set():
            worked = False
            try:
                for campaign in sends.sending_campaigns(self.db):
                    if self.stop.is_set():
                        break
                    if sends.take_lease(self.db, campaign["id"], campaign["sender"], self.token, self.lease_s):
                        self._held.add(campaign["id"])
                        worked = self.serve(campaign) or worked
                    else:
                        self._held.discard(campaign["id"])
            except Exception:  # the database may be away: try again in a moment
                log.exception("notice sender round failed")
            if not worked:
                self.stop.wait(1.0)
        for campaign_id in list(self._held):
            try:
                sends.release_lease(self.db, campaign_id, self.token)
            except Exception:
                log.exception("could not release campaign %s", campaign_id)
        self.pool.shutdown(wait=True)
        log.info("notice sender stopped")

    def serve(self, campaign: dict) -> bool:
        """One batch of a campaign (about a second's worth at its rate); False when there was nothing to send."""
        cid = campaign["id"]
        if time.monotonic() >= self._next_resolve.get(cid, 0.0):
            self._next_resolve[cid] = time.monotonic() + RESOLVE_EVERY_S
            self.resolve(campaign)
        quiet = rules.quiet_groups(rules.parse_quiet_hours(campaign["quiet_hours"]), self._zone_groups(cid), utcnow())
        batch = max(1, min(500, int(campaign["rate_per_second"])))
        claimed = sends.claim(self.db, cid, self.token, batch, quiet, self.cfg.secret_key)
        if not claimed:
            if sends.settled(self.db, cid, self.cfg.notice_settle_seconds) and store.finish(self.db, cid):
                log.info("campaign %s finished: its numbers are deleted", cid)
                self._held.discard(cid)
            return False
        statements = json.loads(campaign["statements"])
        results = list(self.pool.map(lambda c: self._send(campaign, statements, c), claimed))
        sends.record_sent(self.db, self.token, [(c.id, r[1]) for c, r in zip(claimed, results) if r[0] == "sent"])
        refused = [(c.id, *r[1]) for c, r in zip(claimed, results) if r[0] == "refused"]
        sends.record_refused(self.db, self.token, refused)
        sends.requeue(self.db, self.token, [c.id for c, r in zip(claimed, results) if r[0] == "unsent"])
        return True

    def _zone_groups(self, cid: int) -> list[str]:
        expires, groups = self._groups.get(cid, (0.0, []))
        if time.monotonic() >= expires:
            groups = sends.zone_groups(self.db, cid)
            self._groups[cid] = (time.monotonic() + GROUPS_EVERY_S, groups)
        return groups

    # -- one text ------------------------------------------------------------------------------------------
    def _client(self):
        client = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = rest_client(self.cfg)
        return client

    def _send(self, campaign: dict, statements: dict, claimed: sends.Claimed):
        """("sent", sid), ("refused", (http status, code)), ("unsent", None) when stopping before its turn,
        or ("unknown", reason): Twilio may or may not have it (left "sending" and resolved later, never sent
        blindly again)."""
        if not self.gate.wait(campaign["rate_per_second"], campaign["sender"], self.stop):
            return ("unsent", None)  # stopping: claimed, never sent, queued again at once
        statement = statements.get(claimed.language) or next(iter(statements.values()))
        body = rules.message_text(statement, hotline=campaign["hotline_number"], url=campaign["notice_url"],
                                  reference=claimed.code)
        kwargs = {"to": claimed.number, "body": body}
        if self.cfg.public_url:  # Twilio reports delivery to the signed route (webhooks/sms.py)
            kwargs["status_callback"] = f"{self.cfg.public_url}/sms/status?r={claimed.id}"
        sender = campaign["sender"]
        if sender.startswith("MG"):
            kwargs["messaging_service_sid"] = sender
        else:
            kwargs["from_"] = sender
        try:
            return ("sent", self._client().messages.create(**kwargs).sid)
        except TwilioRestException as exc:
            if exc.status >= 500:  # Twilio may have taken it before failing: find out before sending again
                return ("unknown", f"{exc.status}")
            return ("refused", (exc.status, exc.code))
        except Exception as exc:  # a timeout, a reset connection: the message may exist
            log.warning("notice to recipient %s: no answer from Twilio (%s); resolved later", claimed.id,
                        type(exc).__name__)
            return ("unknown", type(exc).__name__)

    # -- recipients left "sending" --------------------------------------------------------------------------
    def resolve(self, campaign: dict) -> None:
        """Recipients another sender (or this one) left "sending": adopt the message Twilio shows with their
        code, or queue them again when it shows none."""
        stale = sends.stale_sending(self.db, campaign["id"], self.token, self.lease_s + REST_TIMEOUT_S)
        again = []
        for row in stale:
            if not row["number"]:
                again.append(row["id"])
                continue
            try:
                sid = self._sent_with(row["number"], row["reference_hash"])
            except Exception:
                log.exception("could not read Twilio's messages to recipient %s: tried again later", row["id"])
                continue
            if sid:
                sends.record_sent(self.db, self.token, [(row["id"], sid)])
                log.info("recipient %s: adopted message %s sent before a restart", row["id"], sid)
            else:
                again.append(row["id"])
        sends.requeue(self.db, self.token, again)

    def _sent_with(self, number: str, reference_hash: str) -> str | None:
        """The SID of a message to `number` carrying the code whose hash is `reference_hash`, if Twilio has
        one (the list resource's To filter: https://www.twilio.com/docs/messaging/api/message-resource
        #read-multiple-message-resources)."""
        for message in self._client().messages.list(to=number, limit=50):
            if any(code_hash(self.key, code) == reference_hash for code in rules.references_in(message.body)):
                return message.sid
        return None


def start(hotline, stop: threading.Event) -> threading.Thread:
    """The sender's thread in `ivr background`."""
    thread = threading.Thread(target=NoticeSender(hotline, stop).run, name="notice-sender", daemon=True)
    thread.start()
    return thread
