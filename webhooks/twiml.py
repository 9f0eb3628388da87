"""Rendering a flow Reply as TwiML with the twilio package's VoiceResponse."""
from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

from ivr.core import verbs
from ivr.core.rules import Rules


def url(link: verbs.Link, base: str = "") -> str:
    """Our URL for a link; relative unless a public base URL is configured (Twilio resolves relative ones)."""
    query = urlencode(link.params)
    return f"{base}{link.route}" + (f"?{query}" if query else "")


def media_url(sha256: str, base: str = "") -> str:
    return f"{base}/media/{sha256}.wav"


def _say(parent, verb: verbs.Say, rules: Rules) -> None:
    lang = rules.languages.get(verb.lang) or rules.languages[rules.default_language]
    kwargs = {"language": lang.say_language}
    if lang.voice:
        kwargs["voice"] = lang.voice
    parent.say(verb.text, **kwargs)


def _child(parent, verb, rules: Rules, base: str) -> None:
    if isinstance(verb, verbs.Say):
        _say(parent, verb, rules)
    elif isinstance(verb, verbs.Play):
        parent.play(media_url(verb.media, base), **({"loop": verb.loop} if verb.loop != 1 else {}))
    elif isinstance(verb, verbs.PlayUrl):
        parent.play(verb.url)
    elif isinstance(verb, verbs.Pause):
        parent.pause(length=verb.seconds)
    else:
        raise TypeError(f"not a prompt: {verb!r}")


_cache: dict = {}
_cache_rules: list = [None]
CACHE_SIZE = 4096


def render(reply: verbs.Reply, rules: Rules, base: str = "") -> str:
    """The TwiML document for a reply, cached: in a surge most callers get the very same documents.

    Verbs are frozen values, so (rules, base URL, verbs) determines the document exactly.
    """
    if _cache_rules[0] is not rules or len(_cache) > CACHE_SIZE:
        _cache.clear()
        _cache_rules[0] = rules
    key = (base, tuple(reply.verbs))
    body = _cache.get(key)
    if body is None:
        body = _cache[key] = _render(reply.verbs, rules, base)
    return body


def _render(sequence: tuple | list, rules: Rules, base: str) -> str:
    resp = VoiceResponse()
    for verb in sequence:
        if isinstance(verb, verbs.Gather):
            extra = {"num_digits": verb.num_digits} if verb.num_digits else {}
            gather = resp.gather(action=url(verb.action, base), method="POST", input="dtmf", timeout=verb.timeout,
                                 finish_on_key=verb.finish_on_key, action_on_empty_result=False, **extra)
            for prompt in verb.prompts:
                _child(gather, prompt, rules, base)
        elif isinstance(verb, verbs.Redirect):
            resp.redirect(url(verb.to, base), method="POST")
        elif isinstance(verb, verbs.Enqueue):
            if verb.wait is None:  # Twilio's own hold music: works when our server does not
                resp.enqueue(verb.queue)
            else:
                resp.enqueue(verb.queue, wait_url=url(verb.wait, base), wait_url_method="POST",
                             action=url(verb.action, base), method="POST")
        elif isinstance(verb, verbs.Record):
            resp.record(action=url(verb.action, base), method="POST", max_length=verb.max_seconds,
                        finish_on_key="#", play_beep=True, timeout=5, trim="trim-silence")
        elif isinstance(verb, verbs.Hangup):
            resp.hangup()
        elif isinstance(verb, verbs.Leave):
            resp.leave()
        elif isinstance(verb, verbs.Dial):
            extra = {"caller_id": verb.caller_id} if verb.caller_id else {}
            resp.dial(verb.number, action=url(verb.action, base), method="POST", timeout=30, **extra)
        elif isinstance(verb, verbs.DialQueue):
            dial = resp.dial(action=url(verb.action, base), method="POST")
            dial.queue(verb.queue, url=url(verb.notice, base), method="POST")
        else:
            _child(resp, verb, rules, base)
    return str(resp)


EMPTY = str(VoiceResponse())
