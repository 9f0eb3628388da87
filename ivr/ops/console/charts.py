"""Charts as plain geometry for server-drawn SVG: no JavaScript, no library, readable without styles.

Each chart is drawn twice, at the size it is shown, so its text is never scaled down to a smudge: wide
columns for a desktop (oldest on the left, "now" marked at the right, round clock ticks, a y-axis with
steps, each bar's number above it when it fits), and rows for a phone, newest first, every number shown.
CSS shows the one that fits the screen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_BOTTOM, PAD_TOP = 44, 36, 24, 18
PHONE_WIDTH, ROW_H, PHONE_LABEL_W, PHONE_VALUE_W = 340, 22, 52, 96
LABEL_WIDTH = 40  # what a "14:00" label needs along the axis, in chart units
NUMBER_MIN_WIDTH = 14  # a bar narrower than this gets no number above it (its <title> still has it)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    overlay_y: float = 0.0  # a second, smaller value drawn over the bar (e.g. abandoned of all calls)
    overlay_height: float = 0.0
    overlay_width: float = 0.0
    overlay_value: int = 0


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str  # what a screen reader says instead of the picture
    kind: str  # "columns" (over time) or "rows" (per label)
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...] = ()  # (x, clock time) along the bottom
    grid: tuple[tuple[float, int], ...] = ()  # (y, value) steps of the y-axis
    now_x: float | None = None
    overlay_name: str = ""
    numbers: bool = True  # bars wide enough to carry their number
    phone: tuple[Bar, ...] = ()  # the same figures as rows, newest first
    phone_height: int = 0

    @property
    def left(self) -> int:
        return PAD_LEFT

    @property
    def right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def baseline(self) -> int:
        return self.height - PAD_BOTTOM

    @property
    def phone_width(self) -> int:
        return PHONE_WIDTH


def nice_steps(top: int) -> tuple[int, int]:
    """(axis maximum, step): a step of 1, 2 or 5 times a power of ten, at most five steps to the top."""
    if top <= 4:
        return max(top, 1), 1
    raw = top / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return int(math.ceil(top / step) * step), int(step)


def _phone_rows(labels: list[str], values: list[int], overlay: list[int] | None, top: int) -> tuple[Bar, ...]:
    plot = PHONE_WIDTH - PHONE_LABEL_W - PHONE_VALUE_W
    rows = []
    for i in reversed(range(len(values))):  # newest first
        extra = overlay[i] if overlay else 0
        y = 4 + (len(values) - 1 - i) * ROW_H
        rows.append(Bar(x=PHONE_LABEL_W, y=y, width=round(max(plot * values[i] / top, 1 if values[i] else 0), 2),
                        height=ROW_H - 6, label=labels[i], value=values[i], overlay_y=y,
                        overlay_height=ROW_H - 6, overlay_width=round(plot * extra / top, 2), overlay_value=extra))
    return tuple(rows)


def _slot_width(values: list[int]) -> float:
    return (WIDTH - PAD_LEFT - PAD_RIGHT) / max(len(values), 1)


def columns(title: str, values: list[int], labels: list[str], *, summary: str, ticks=None, tick_every: int = 1,
            now_x: float | None = None, overlay: list[int] | None = None, overlay_name: str = "") -> Chart:
    """Vertical bars, one per label, with a y-axis in round steps and each bar's number when it fits; tick
    labels as given (x, text), or every `tick_every` bars."""
    top, step = nice_steps(max(values + (overlay or []) + [0]))
    plot_h, width = HEIGHT - PAD_BOTTOM - PAD_TOP, _slot_width(values)
    bars = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        extra = overlay[i] if overlay else 0
        oh = plot_h * extra / top
        bars.append(Bar(x=round(PAD_LEFT + i * width + width * 0.1, 2), y=round(PAD_TOP + plot_h - h, 2),
                        width=round(width * 0.8, 2), height=round(h, 2), label=labels[i], value=value,
                        overlay_y=round(PAD_TOP + plot_h - oh, 2), overlay_height=round(oh, 2),
                        overlay_width=round(width * 0.8, 2), overlay_value=extra))
    if ticks is None:
        ticks = [(round(PAD_LEFT + (i + 0.5) * width, 2), labels[i]) for i in range(0, len(values), tick_every)]
    grid = tuple((round(PAD_TOP + plot_h - plot_h * v / top, 2), v) for v in range(0, top + 1, step))
    phone = _phone_rows(labels, values, overlay, top)
    return Chart(title, summary, "columns", WIDTH, HEIGHT, tuple(bars), tuple(ticks), grid, now_x, overlay_name,
                 width >= NUMBER_MIN_WIDTH, phone, 8 + ROW_H * len(values))


def timeline(title: str, values: list[int], start: datetime, slot: timedelta, now: datetime, *, tick_every: timedelta,
             summary: str, overlay: list[int] | None = None, overlay_name: str = "") -> Chart:
    """Counts per time slot from `start`, the last slot holding `now`: columns with clock ticks every
    `tick_every` (on round times), "now" marked, and a y-axis in round steps."""
    width = _slot_width(values)

    def x_at(moment: datetime) -> float:
        return round(PAD_LEFT + (moment - start) / slot * width, 2)

    every = tick_every.total_seconds()
    moment = datetime.fromtimestamp(math.ceil(start.timestamp() / every) * every, start.tzinfo)
    ticks, now_x = [], x_at(now)
    while moment <= now:
        if abs(x_at(moment) - now_x) >= LABEL_WIDTH:  # no clock time printed over the "now" label
            ticks.append((x_at(moment), moment.strftime("%H:%M")))
        moment += tick_every
    labels = [(start + slot * i).strftime("%H:%M") for i in range(len(values))]
    return columns(title, values, labels, summary=summary, ticks=ticks, now_x=now_x, overlay=overlay,
                   overlay_name=overlay_name)


def rows(title: str, items: list[tuple[str, int]], *, summary: str) -> Chart:
    """One horizontal bar per label, longest first as given, each with its number."""
    row_h, label_w = 26, 160
    top = max([n for _, n in items] + [1])
    plot_w = WIDTH - label_w - 60
    bars = tuple(Bar(x=label_w, y=PAD_TOP + i * row_h, width=round(max(plot_w * n / top, 1), 2), height=row_h - 8,
                     label=label, value=n) for i, (label, n) in enumerate(items))
    phone_plot = PHONE_WIDTH - 130 - 40
    phone = tuple(Bar(x=130, y=4 + i * ROW_H, width=round(max(phone_plot * n / top, 1), 2), height=ROW_H - 6,
                      label=label, value=n) for i, (label, n) in enumerate(items))
    return Chart(title, summary, "rows", WIDTH, PAD_TOP * 2 + row_h * max(len(items), 1), bars, (), (), None, "",
                 True, phone, 8 + ROW_H * max(len(items), 1))
