"""Replies that do not depend on the caller, made once per snapshot and language, with their TwiML.

In a surge nearly every caller takes the same few steps: the greeting, a key in the menu. What the flow
answers there depends only on the rules, the snapshot (mode, content) and the call's position (language,
attempts, step number, the key): `prepared()` asks the flow once for each and keeps the reply with its
rendered TwiML until the rules or the content change. A step that looks at its routing context (the time,
the queues, the caller's number: someone asking for a person) depends on the caller and is never kept;
the context is built only if the flow asks for it.

The flow in ivr/core stays as it is: pure functions, asked here through one wrapper.
"""
from __future__ import annotations

from dataclasses import dataclass

from ivr.core import verbs
from webhooks import twiml

CACHE_SIZE = 4096  # replies kept; past it the cache starts afresh (positions x keys x languages: hundreds)


@dataclass
class PreparedReply(verbs.Reply):
    """A reply with its TwiML already rendered for the rules and base URL it was made with."""

    twiml: str = ""


class _LazyContext:
    """The routing context, built on first use; `looked` says the flow used it."""

    __slots__ = ("_make", "_context", "looked")

    def __init__(self, make):
        self._make, self._context, self.looked = make, None, False

    def __getattr__(self, name: str):
        self.looked = True
        if self._context is None:
            self._context = self._make()
        return getattr(self._context, name)


# (rules, content, base URL, the replies kept for them): a new dict when any of them changes, never one
# cleared under a request that is filling it
_scope: list = [None]


def prepared(base: str, step, rules, snap, pos: verbs.Position, *args, context=None, **kwargs) -> verbs.Reply:
    """`step(rules, snap, pos, *args, **kwargs)` (with `ctx=` a lazily built `context()` when given), or the
    same answer kept from an earlier caller; a fresh copy each time (handlers add their effects to it)."""
    scope = _scope[0]
    if (scope is None or scope[0] is not rules or scope[1] is not snap.content or scope[2] != base
            or len(scope[3]) >= CACHE_SIZE):
        scope = _scope[0] = (rules, snap.content, base, {})
    replies = scope[3]
    key = (step, snap.mode, snap.fresh, pos, args, tuple(kwargs.items()))
    kept = replies.get(key)
    if kept is None:
        lazy = _LazyContext(context) if context is not None else None
        reply = step(rules, snap, pos, *args, ctx=lazy, **kwargs) if lazy else step(rules, snap, pos, *args, **kwargs)
        if (lazy is not None and lazy.looked) or reply.effects:
            return reply  # it depends on this caller
        kept = replies[key] = (tuple(reply.verbs), tuple(reply.events), reply.outcome, reply.language,
                             twiml.render(reply, rules, base))
    verbs_, events, outcome, language, body = kept
    return PreparedReply(list(verbs_), list(events), outcome, language, [], body)
