"""The YAML staff type (routing_rules.yaml) is read with the line of every key, and refused, naming the line,
when it is not plain data or goes past a bound: each bound holds exactly where its message says."""
from __future__ import annotations

import pytest

from ivr.core.yaml_text import MAX_CHARS, MAX_DEPTH, MAX_EVENTS, YamlRefused, read


def _refused(text: str) -> YamlRefused:
    with pytest.raises(YamlRefused) as refused:
        read(text)
    return refused.value


def test_every_key_and_item_is_mapped_to_the_line_it_is_written_on():
    data, lines = read("a:\n  b:\n    - 1\n    - c: 2\nd: x\n")
    assert data == {"a": {"b": [1, {"c": 2}]}, "d": "x"}
    assert lines == {(): 1, ("a",): 1, ("a", "b"): 2, ("a", "b", 0): 3, ("a", "b", 1): 4, ("a", "b", 1, "c"): 4,
                     ("d",): 5}


def test_a_key_that_is_not_text_is_mapped_by_its_text():
    assert read("7: seven\n")[1] == {(): 1, ("7",): 1}


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_document_is_nothing_with_no_lines(text):
    assert read(text) == (None, {})


def _nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_nesting_is_allowed_to_its_limit_and_refused_one_level_past_it_at_that_level():
    """The document's own mapping or list is the first level."""
    assert read(_nested(MAX_DEPTH))[0] is not None
    assert read(f"a: 1\nb: {_nested(MAX_DEPTH - 1)}\n")[0]["a"] == 1
    refused = _refused("[\n" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert (refused.line, refused.message) == (MAX_DEPTH + 1, f"nested more than {MAX_DEPTH} levels deep")
    refused = _refused(f"a: 1\nb: {_nested(MAX_DEPTH)}\n")
    assert (refused.line, refused.message) == (2, f"nested more than {MAX_DEPTH} levels deep")
    # Depth comes back down as brackets close: side by side, each as deep as allowed, is allowed.
    assert len(read(f"- {_nested(MAX_DEPTH - 1)}\n- {_nested(MAX_DEPTH - 1)}\n")[0]) == 2


def test_the_length_is_allowed_to_its_limit_and_refused_one_character_past_it():
    at_limit = "a: " + "x" * (MAX_CHARS - 3)
    assert read(at_limit)[0] == {"a": "x" * (MAX_CHARS - 3)}
    refused = _refused(at_limit + "x")
    assert (refused.line, refused.message) == (None, f"the document is longer than {MAX_CHARS:,} characters")


def _scalars(count: int) -> str:
    """A flow list whose parse is `count` events: the stream, the document and the list open and close."""
    return "[" + ",".join(["1"] * (count - 6)) + "]"


def test_a_document_of_as_many_parts_as_the_limit_is_read_and_one_more_is_refused():
    assert len(read(_scalars(MAX_EVENTS))[0]) == MAX_EVENTS - 6
    refused = _refused("\n" + _scalars(MAX_EVENTS + 1))
    assert (refused.line, refused.message) == (2, f"the document has more than {MAX_EVENTS} parts")


@pytest.mark.parametrize("text, line", [
    ("a: 1\nb: &anchor {c: 1}\n", 2),
    ("a: &x 1\n", 1),
    ("a: 1\nb: 2\nc: *x\n", 3),
])
def test_anchors_and_aliases_are_refused_on_their_line(text, line):
    refused = _refused(text)
    assert (refused.line, refused.message) == (line, "anchors (&) and aliases (*) are not allowed here: write "
                                                     "the value out")
    assert str(refused) == f"line {line}: {refused.message}"


def test_text_that_is_not_yaml_is_refused_with_the_line_and_the_parsers_own_words():
    refused = _refused("a: 1\nb: [1,\n")
    assert (refused.line, refused.message) == (3, "not valid YAML: expected the node content, but found "
                                                  "'<stream end>'")


def test_a_python_tag_is_refused_not_run():
    refused = _refused("a: !!python/object/apply:os.system ['true']\n")
    assert refused.line == 1 and refused.message.startswith("not valid YAML: could not determine a constructor")


def test_a_control_character_is_refused_where_the_reader_finds_it():
    """PyYAML's reader refuses it before any line is parsed: its own words, which say where, and no line."""
    refused = _refused("a: 1\nb: \x07\n")
    assert (refused.line, refused.message) == (None, "not valid YAML: unacceptable character #x0007: special "
                                                     'characters are not allowed\n  in "<unicode string>", position 8')
