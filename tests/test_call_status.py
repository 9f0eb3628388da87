"""Twilio's status callbacks carry a `SequenceNumber` and can repeat and arrive out of order (../shared/TWILIO.md,
from Twilio's status callback documentation). The writer keeps a call's status only when a callback ranks
higher (ivr/spool/batch.py), so the rank (ivr/core/call_status.py) must only grow as a call progresses: a late
"ringing" never undoes "completed"."""
from __future__ import annotations

from ivr.core.call_status import TERMINAL, status_order


def test_a_call_moves_forward_through_its_statuses_and_never_back():
    path = [("queued", 0), ("initiated", 0), ("ringing", 1), ("in-progress", 2), ("completed", 3)]
    ranks = [status_order(status, sequence) for status, sequence in path]
    assert ranks == sorted(ranks) and len(set(ranks[1:])) == 4  # queued and initiated: the same first step


def test_within_one_status_the_later_callback_wins_and_a_missing_sequence_counts_as_the_first():
    assert status_order("in-progress", 5) > status_order("in-progress", 4) > status_order("in-progress", 1)
    assert status_order("in-progress", 1) > status_order("in-progress", 0) == status_order("in-progress", None)
    assert status_order("ringing", -3) == status_order("ringing", 0)  # nonsense is the first, not a step back


def test_every_ending_outranks_every_state_before_it_whatever_the_sequence_numbers_say():
    for ending in TERMINAL:
        assert status_order(ending, 0) > status_order("in-progress", 10**9) > status_order("ringing", 10**9)
        assert status_order(ending, None) > status_order("ringing", 99_999)
    assert status_order("completed", 7) > status_order("no-answer", 6)  # between endings: the later callback


def test_a_status_twilio_adds_later_ranks_with_the_first_ones_instead_of_failing():
    assert status_order("answered-by-robot", 4) == status_order("queued", 4) == 4
