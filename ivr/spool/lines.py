"""Spool lines made from templates: a step's records differ between callers in a few fields only.

Encoding a record's dict as JSON cost about 15 µs in a webhook, one in six of its time. Most of a step's
record is the same for every caller who takes that step (the step's URL, what happened, the outcome); only
the CallSid, the time and a few fields (the caller's keyed hash) differ. So the line is encoded once per
shape, with placeholders, and each record fills them in: about 3 µs. The bytes are exactly what
`segments.encode` makes of the same dict (tests/test_spool_lines.py), so the spool writer reads them as
before.
"""
from __future__ import annotations

from json.encoder import encode_basestring_ascii

from ivr.spool.segments import encode

CACHE_SIZE = 4096  # shapes kept; past it the cache starts afresh (a surge takes a few dozen)


class Var:
    """A placeholder for a field that differs between records of one shape; `Var(n)`: the n-th value."""

    __slots__ = ("token",)

    def __init__(self, n: int):
        self.token = f"\x00{n}\x00"


def _value(value) -> str:
    """One value as `encode` writes it inside a record."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is float:
        return float.__repr__(value)
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return encode(value)


class LineTemplates:
    """Per process: shape key -> the encoded pieces between the placeholders."""

    def __init__(self):
        self._shapes: dict = {}

    def line(self, key, fields, values: tuple) -> bytes:
        """The record `fields()` would give with its `Var(n)`s replaced by `values[n]`, as one spool line.

        `key` names the shape: everything in the record but the values (it must change whenever any other
        field could); `fields` is called only the first time a shape is seen."""
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._learn(key, fields())
            if shape is None:  # a placeholder's text also stood in a field: encode this one as it is
                record = {k: values[int(v.token.strip("\x00"))] if isinstance(v, Var) else v
                          for k, v in fields().items()}
                return (encode(record) + "\n").encode()
        pieces, order = shape
        out = [pieces[0]]
        for n, piece in zip(order, pieces[1:]):
            out.append(_value(values[n]))
            out.append(piece)
        return "".join(out).encode()

    def _learn(self, key, record: dict) -> tuple:
        slots = {}
        for name, value in record.items():
            if isinstance(value, Var):
                slots[name] = value
                record[name] = value.token
        text = encode(record) + "\n"
        if any(text.count(encode(var.token)) != 1 for var in slots.values()):
            return None
        # Cut the encoded record at each placeholder (quoted and escaped as encode wrote it), in order.
        pieces, order = [], []
        for var in sorted(slots.values(), key=lambda v: text.index(encode(v.token))):
            quoted = encode(var.token)
            head, _, text = text.partition(quoted)
            pieces.append(head)
            order.append(int(var.token.strip("\x00")))
        pieces.append(text)
        if len(self._shapes) >= CACHE_SIZE:
            self._shapes.clear()
        shape = self._shapes[key] = (tuple(pieces), tuple(order))
        return shape
