"""Charts as plain geometry for server-drawn SVG: no JavaScript, no library, readable without styles."""
from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT = 720, 180
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 40, 22, 12


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
    overlay_value: int = 0


@dataclass(frozen=True)
class Chart:
    title: str
    summary: str  # what a screen reader says instead of the picture
    kind: str  # "columns" or "rows"
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...] = ()
    max_value: int = 0
    overlay_name: str = ""

    @property
    def left(self) -> int:
        return PAD_LEFT

    @property
    def baseline(self) -> int:
        return self.height - PAD_BOTTOM


def columns(title: str, values: list[int], labels: list[str], *, tick_every: int, summary: str,
            overlay: list[int] | None = None, overlay_name: str = "") -> Chart:
    """Vertical bars over time, with a tick label every `tick_every` bars."""
    top = max(values + (overlay or []) + [1])
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    step = plot_w / max(len(values), 1)
    bars = []
    for i, value in enumerate(values):
        h = plot_h * value / top
        extra = overlay[i] if overlay else 0
        oh = plot_h * extra / top
        bars.append(Bar(x=round(PAD_LEFT + i * step, 2), y=round(PAD_TOP + plot_h - h, 2),
                        width=round(max(step * 0.8, 0.5), 2), height=round(h, 2), label=labels[i], value=value,
                        overlay_y=round(PAD_TOP + plot_h - oh, 2), overlay_height=round(oh, 2), overlay_value=extra))
    ticks = tuple((round(PAD_LEFT + i * step, 2), labels[i]) for i in range(0, len(values), tick_every)
                  if PAD_LEFT + i * step <= WIDTH - 36)  # a label needs about 36 units: none cut off at the edge
    return Chart(title, summary, "columns", WIDTH, HEIGHT, tuple(bars), ticks, top, overlay_name)


def rows(title: str, items: list[tuple[str, int]], *, summary: str) -> Chart:
    """One horizontal bar per label, longest first as given."""
    row_h, label_w = 26, 120
    top = max([n for _, n in items] + [1])
    plot_w = WIDTH - label_w - 60
    bars = tuple(Bar(x=label_w, y=PAD_TOP + i * row_h, width=round(max(plot_w * n / top, 1), 2), height=row_h - 8,
                     label=label, value=n) for i, (label, n) in enumerate(items))
    return Chart(title, summary, "rows", WIDTH, PAD_TOP * 2 + row_h * max(len(items), 1), bars, (), top)
