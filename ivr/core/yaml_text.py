"""Reading YAML that staff type or paste (routing_rules.yaml): plain data only, with the line of every key.

Anchors and aliases let a few hundred characters stand for billions of nodes (an "alias bomb"): anything
that walks the expanded document, a validator or a line map, then holds a worker for seconds and gigabytes.
So the event stream is read first, which costs time in proportion to the text, and a document with an
anchor, an alias or more than MAX_EVENTS events is refused, naming the line, before anything is built.

Nesting is bounded too, while the events are read: PyYAML's scanner works in time that grows with the square
of the depth of open brackets (`[` x 2,000 took 11 s) and its composer recurses once per level (a
RecursionError, a 500, from depth ~900). A text longer than MAX_CHARS is refused before any of it is read.
"""
from __future__ import annotations

import yaml

MAX_EVENTS = 50_000  # the shipped rules are about 400 events; this bounds the work any text can cause
MAX_DEPTH = 20  # the shipped rules nest 5 deep
MAX_CHARS = 200_000  # the shipped rules are about 12,000 characters
_OPENS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSES = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class YamlRefused(ValueError):
    def __init__(self, line: int | None, message: str):
        self.line, self.message = line, message
        super().__init__(f"line {line}: {message}")


def read(text: str):
    """(data, {key path: line}) of a YAML document; YamlRefused if it is not plain, valid YAML."""
    if len(text) > MAX_CHARS:
        raise YamlRefused(None, f"the document is longer than {MAX_CHARS:,} characters")
    depth = 0
    try:
        for n, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
            depth += isinstance(event, _OPENS) - isinstance(event, _CLOSES)
            if depth > MAX_DEPTH:
                raise YamlRefused(event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise YamlRefused(event.start_mark.line + 1,
                                  "anchors (&) and aliases (*) are not allowed here: write the value out")
            if n >= MAX_EVENTS:  # n counts from 0: this is event MAX_EVENTS + 1
                raise YamlRefused(event.start_mark.line + 1, f"the document has more than {MAX_EVENTS} parts")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlRefused(mark.line + 1 if mark else None, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    return data, (_line_map(node) if node is not None else {})


def _line_map(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path in the YAML document to the (1-based) line it is written on."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out)
    return out
