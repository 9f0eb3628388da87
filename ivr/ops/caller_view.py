"""The one answer to "what does a caller get right now?" and the go-live check, for every staff surface:
the dashboard, `ivr status` and `ivr preflight`, the API and /healthz. This module only gathers what the pure
core needs (ivr/core/caller_now.py, ivr/core/go_live.py): the snapshot, the rules, the clock, queue
figures, who is on the agent line, the SMS settings, whether the rules file is the rules in force, and how
long the published statements take to hear.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from ivr.config import Config
from ivr.core import go_live
from ivr.core.caller_now import CallerNow, caller_now, in_mode
from ivr.core.rules import Rules, RulesInvalid, load
from ivr.core.snapshot import Snapshot
from ivr.core.verbs import Play, Say
from ivr.store import approvals, reads
from ivr.store.db import Database
from ivr.store.models import utcnow
from ivr.store.queues import queue_stats
from ivr.store.state import get_mode, load_content

log = logging.getLogger(__name__)
WORDS_PER_SECOND = 2.5  # a slow, clear phone voice: the estimate when the offline voice cannot be used


@dataclass(frozen=True)
class View:
    """What callers get now (in the current mode), and what stands in the way of live mode."""

    now: CallerNow | None  # None: the rules file cannot be read, so nothing can be said
    problems: list[go_live.Problem]
    checked_for: str  # the mode the problems are for


def agents_on_line(db: Database) -> int:
    """Agents who can take a call now. The one place the go-live check reads agent state (ivr/store/reads.py
    says who is available or on a call)."""
    with db.read() as conn:
        people = reads.presence(conn)
    return len(people.available) + len(people.on_call)


def sms_ready(cfg: Config) -> bool:
    """Everything key 4's text message needs: a Twilio account, a number to send from, a notice to link."""
    return bool(cfg.twilio_account_sid and cfg.sms_from and cfg.notice_url)


class _Durations:
    """How long a Say or Play lasts: published audio by its stored duration, a prompt as the offline voice
    says it (the measure `ivr simulate --all-paths` uses), measured once per process."""

    def __init__(self):
        self._said: dict[tuple[str, str], float] = {}

    def seconds(self, snap: Snapshot, rules: Rules):
        durations = {s.media: (s.duration_ms or 0) / 1000 for s in snap.content.spoken.values() if s.media}

        def seconds_of(verb) -> float:
            if isinstance(verb, Play):
                return durations.get(verb.media, 0.0) * verb.loop
            if isinstance(verb, Say):
                return self._say(verb.text, verb.lang)
            return 0.0

        return seconds_of

    def _say(self, text: str, lang: str) -> float:
        key = (text, lang)
        if key not in self._said:
            try:
                from ivr.media import audio, tts

                speech = tts.synthesize(text, lang, engines=("espeak",))
                self._said[key] = audio.make_phone_ready(audio.decode(speech.data)).duration_ms / 1000
            except Exception as exc:  # no offline voice here: estimate rather than claim nothing
                log.warning("time to facts: estimating a prompt's length (%s)", exc)
                self._said[key] = len(text.split()) / WORDS_PER_SECOND
        return self._said[key]


_durations = _Durations()


def seconds_to_facts(rules: Rules, snap: Snapshot) -> dict[str, float | None]:
    seconds_of = _durations.seconds(snap, rules)
    return {lang: go_live.time_to_facts(rules, snap, lang, seconds_of) for lang in rules.languages}


def build(db: Database, cfg: Config, rules: Rules, snap: Snapshot, rules_file_problem: str | None,
          for_mode: str = "live", now: datetime | None = None) -> View:
    """What callers get now, and the problems for `for_mode` (the go-live check: live)."""
    now = now or datetime.now(timezone.utc)
    try:
        stats = queue_stats(db, cached=False)
        on_line = agents_on_line(db)
        awaiting = tuple(approvals.awaiting_sentence(row) for row in approvals.awaiting(db))
    except Exception as exc:  # the database is away: say what can be said from the snapshot
        log.warning("caller view without queue or agent figures: %s", exc)
        stats, on_line, awaiting = {}, 0, ()
    ready = sms_ready(cfg)
    view = caller_now(rules, snap, now, stats, ready, awaiting)
    target = view if for_mode == snap.mode else caller_now(rules, in_mode(snap, for_mode), now, stats, ready)
    facts = go_live.Facts(for_mode, on_line, ready, rules_file_problem, seconds_to_facts(rules, snap), _target_s())
    return View(view, go_live.problems(target, rules, facts), for_mode)


def _target_s() -> float:
    from ivr.tools.time_to_facts import TARGET_S

    return TARGET_S


def of_hotline(hotline, for_mode: str = "live") -> View:
    """In a running server: the rules in force in this process and the snapshot callers are served from."""
    error = hotline.rules.last_error
    problem = f"{error} (the last good rules are in force)" if error is not None else None
    return build(hotline.db, hotline.config, hotline.rules.rules, hotline.state.current(), problem, for_mode)


def of_install(db: Database, cfg: Config, for_mode: str = "live") -> View:
    """From the command line: the rules file (what a running server has in force once it is valid) and the
    state in the database."""
    try:
        rules = load(cfg.rules_path)
    except RulesInvalid as exc:
        problem = go_live.Problem("rules-file", f"the rules file on disk is not the rules in force: {exc} "
                                  "(a running server keeps its last good rules)",
                                  "`ivr rules check` names each error; fix the file, then `ivr rules reload`")
        return View(None, [problem], for_mode)
    mode = get_mode(db)[0]
    with db.read() as conn:
        snap = Snapshot(mode, load_content(conn, 0))
    return build(db, cfg, rules, snap, None, for_mode)


# -- in words, the same on every surface ------------------------------------------------------------------


def lines(view: View) -> list[str]:
    """What callers get now, one line per language and key: `ivr status`, and the dashboard's table."""
    now = view.now
    if now is None:
        return ["What callers get cannot be told: the rules file cannot be read."]
    incident = f"incident {now.incident_id} ({now.incident_title})" if now.incident_id else "no active incident"
    out = [f"{now.mode} mode, {incident}, at {now.at:%Y-%m-%d %H:%M} UTC"
           + ("" if now.fresh else " (database unreachable: from the last good snapshot)")]
    for queue in now.queues:
        out.append(f"queue {queue.name}: {queue.described}")
    for language in now.languages:
        for key in language.keys:
            also = f" (on the breach list: {key.affected_gets})" if key.affected_gets else ""
            out.append(f"{language.lang} key {key.key} ({key.action}): {key.gets}{also}")
    for topic in now.stand_ins():
        out.append(f"stand-in: {topic.name}: {topic.stand_in}")
    out.extend(f"awaiting approval: {sentence}" for sentence in now.awaiting)
    return out


def health(hotline, snap: Snapshot | None = None) -> dict:
    """The caller view's part of /healthz: topics with nothing published in a language (callers hear the main
    announcement, or the default language's, instead), stand-ins, queues open or closed, what each key gets.
    Not a reason for 503 (callers are served), but ops should know; `ivr preflight` says what to do."""
    try:
        stats = queue_stats(hotline.db)
    except Exception:  # the database is away: the rest of /healthz says so
        stats = {}
    snap = snap or hotline.state.current()
    now = caller_now(hotline.rules.rules, snap, utcnow(), stats, sms_ready(hotline.config))
    return {"missing_topics": [t.name for t in now.stand_ins() if t.spoken is None],
            "stand_ins": {t.name: t.stand_in for t in now.stand_ins()},
            "queues": {q.name: q.described for q in now.queues},
            "keys": {lang.lang: {k.key: k.gets for k in lang.keys} for lang in now.languages}}
