"""The dashboard's charts as geometry: round ticks, a y-axis in steps, "now" marked, the newest first on a phone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ivr.ops.console import charts

NOW = datetime(2026, 12, 1, 14, 37, 12, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize("top, expected", [(0, (1, 1)), (3, (3, 1)), (7, (8, 2)), (23, (25, 5)), (96, (100, 20)),
                                           (101, (150, 50)), (1234, (1500, 500))])
def test_the_y_axis_goes_up_in_round_steps(top, expected):
    assert charts.nice_steps(top) == expected


def _day(values):
    start = datetime(2026, 11, 30, 15, tzinfo=timezone.utc)  # 24 hourly slots, the last holding NOW
    return charts.timeline("Calls", values, start, HOUR, NOW, tick_every=timedelta(hours=3), summary="s")


def test_hourly_ticks_fall_on_round_hours_and_now_is_marked_inside_the_last_hour():
    chart = _day([1] * 23 + [40])
    assert [label for _, label in chart.ticks] == ["15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00",
                                                   "12:00"]
    last = chart.bars[-1]
    assert last.x < chart.now_x < last.x + last.width * 1.25 and chart.now_x <= chart.right
    assert last.height > 100 and last.label == "14:00"  # the current hour is a full-width bar, not a sliver
    assert [v for _, v in chart.grid] == [0, 10, 20, 30, 40] and chart.numbers


def test_on_a_phone_the_newest_slot_comes_first_with_every_number():
    chart = _day(list(range(24)))
    assert [b.label for b in chart.phone[:3]] == ["14:00", "13:00", "12:00"]
    assert [b.value for b in chart.phone][:3] == [23, 22, 21] and chart.phone[0].y < chart.phone[1].y
    assert chart.phone_height >= 24 * charts.ROW_H
    widest = max(b.x + b.width for b in chart.phone)
    assert widest + charts.PHONE_VALUE_W <= charts.PHONE_WIDTH  # room left for the number after every bar
