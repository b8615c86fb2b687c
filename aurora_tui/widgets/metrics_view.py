"""A service's recent CPU, memory and health latency as sparklines as wide as the pane, with the
current value and the range seen."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from ..core.format import bytes_h
from .sparkline import Ring, spark

LABEL = 5
SUFFIX = 30


def metric_line(label: str, ring: Ring, width: int, fmt: Any, *, floor: float | None, min_span: float, style: str) -> Text:
    known = ring.known()
    line = Text(f"{label:<{LABEL}}", style="bold", no_wrap=True, overflow="crop")
    graph_width = max(8, width - LABEL - SUFFIX)
    if not known:
        line.append("no samples yet".ljust(graph_width), style="dim")
        return line
    span = max(min_span, 0.05 * max(known)) if floor is None else min_span
    line.append_text(spark(ring.values, graph_width, floor=floor, min_span=span, style=style))
    line.append(f" now {fmt(ring.values[-1])}", style="bold")
    line.append(f"  {fmt(min(known))}–{fmt(max(known))}", style="dim")
    return line


class MetricsView(Widget):
    DEFAULT_CSS = """
    MetricsView { height: 3; }
    """

    def __init__(self, history: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = history

    def render(self) -> Text:
        width = self.size.width or 80
        h = self.history
        lines = [
            metric_line("CPU", h.cpu, width, lambda v: "-" if v is None else f"{v:.1f}%", floor=0.0, min_span=5.0, style="cyan"),
            metric_line("RSS", h.rss, width, lambda v: bytes_h(None if v is None else int(v)), floor=None, min_span=1024 * 1024, style="magenta"),
            metric_line("Lat", h.latency, width, lambda v: "-" if v is None else f"{v:.0f}ms", floor=0.0, min_span=5.0, style="green"),
        ]
        return Text("\n").join(lines)
