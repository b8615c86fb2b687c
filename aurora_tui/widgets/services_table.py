"""The live services table: one row per service, keyed by name and updated cell by cell, so the cursor
and the operator's place never jump when new data arrives. At 80 columns the sparklines and the port
give way first; the name, its state glyph and the health never do."""
from __future__ import annotations

import time
from typing import Mapping

from rich.text import Text
from textual.binding import Binding

from ..core.format import STATE_GLYPHS, bytes_h
from .age import age_h
from ..core.model import FleetSnapshot, ServiceStatus
from .responsive_table import Col, ResponsiveTable, fit_columns
from .sparkline import Ring, spark

STATE_STYLES = {
    "running": "green",
    "starting": "yellow",
    "stopping": "yellow",
    "stopped": "dim",
    "backoff": "bold dark_orange",
    "failed": "bold red",
    "unmanaged": "cyan",
}

COLUMNS = (
    Col("name", "Service", 14, 0),
    Col("state", "State", 8, 1),
    Col("pid", "PID", 7, 1, justify="right"),
    Col("port", "Port", 5, 4, justify="right"),
    Col("health", "Health", 8, 0),
    Col("cpu", "CPU", 5, 1, justify="right"),
    Col("cpu_spark", "", 6, 3, max_width=16),
    Col("rss", "RSS", 6, 1, justify="right"),
    Col("rss_spark", "", 6, 3, max_width=16),
    Col("restarts", "Rst", 3, 2, justify="right"),
    Col("uptime", "Uptime", 6, 2, justify="right"),
    Col("incidents", "Inc", 3, 2, justify="right"),
)


def cpu_h(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}%" if value >= 99.95 else f"{value:.1f}%"


def rss_h(value: int | None) -> str:
    text = bytes_h(value)
    return text[:-3] + text[-1] if text.endswith(".0M") else text


class ServiceHistory:
    """Recent CPU, RSS and health latency of one service, one value per scan."""

    def __init__(self, size: int = 60) -> None:
        self.cpu = Ring(size)
        self.rss = Ring(size)
        self.latency = Ring(size)

    def add(self, status: ServiceStatus) -> None:
        self.cpu.add(status.cpu)
        self.rss.add(float(status.rss) if status.rss is not None else None)
        self.latency.add(status.latency_ms)


def _state(status: ServiceStatus) -> str:
    """The state, or, while Aurora waits out a back-off before its next try, when that try comes
    (short enough for the column; the glyph by the name still shows the state)."""
    if status.next_try_at is None:
        return status.state
    return f"try {max(0.0, status.next_try_at - time.time()):.0f}s"


def cells(status: ServiceStatus, history: ServiceHistory | None, open_incidents: int | None, widths: Mapping[str, int]) -> dict[str, Text | str]:
    state_style = STATE_STYLES.get(status.state, "")
    if status.healthy:
        health = Text("ok" if status.latency_ms is None else f"ok {status.latency_ms:.0f}ms", style="green")
    elif status.state in ("running", "unmanaged"):
        health = Text("down", style="bold red")
    else:
        health = Text("-", style="dim")
    name = Text(f"{STATE_GLYPHS.get(status.state, '?')} ", style=state_style)
    name.append(status.name, style="bold")
    values: dict[str, Text | str] = {
        "name": name,
        "state": Text(_state(status), style=state_style),
        "pid": str(status.pid or "-"),
        "port": str(status.port or "-"),
        "health": health,
        "cpu": cpu_h(status.cpu),
        "rss": rss_h(status.rss),
        "restarts": Text(str(status.restarts), style="yellow" if status.restarts else ""),
        "uptime": age_h(status.uptime),
        "incidents": Text(str(open_incidents or 0) if open_incidents is not None else "–", style="bold yellow" if open_incidents else "dim"),
    }
    if history is not None:
        if widths.get("cpu_spark"):
            values["cpu_spark"] = spark(history.cpu.values, widths["cpu_spark"], floor=0.0, min_span=5.0, style="cyan")
        if widths.get("rss_spark"):
            known = history.rss.known()
            span = max(1024 * 1024, 0.05 * max(known)) if known else 1.0
            values["rss_spark"] = spark(history.rss.values, widths["rss_spark"], floor=None, min_span=span, style="magenta")
    return values


class ServicesTable(ResponsiveTable):
    BINDINGS = [
        Binding("enter", "select_cursor", "Details", id="services.details"),
    ]
    COLUMNS = COLUMNS

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._name_width = 14
        self._filter = ""
        self._last: tuple[FleetSnapshot, Mapping[str, ServiceHistory], Mapping[str, int] | None] | None = None

    def columns_for(self, width: int):
        columns = tuple(Col("name", c.label, self._name_width, 0) if c.key == "name" else c for c in COLUMNS)
        return fit_columns(columns, width, self.cell_padding)

    def after_relayout(self) -> None:
        if self._last is not None:
            self.show(*self._last)

    def set_filter(self, text: str) -> None:
        self._filter = text.strip().lower()
        if self._last is not None:
            self.show(*self._last)

    def show(self, snapshot: FleetSnapshot, history: Mapping[str, ServiceHistory], open_by_service: Mapping[str, int] | None) -> None:
        self._last = (snapshot, history, open_by_service)
        longest = max((len(s.name) for s in snapshot.services), default=12) + 2
        name_width = max(10, min(24, longest))
        if name_width != self._name_width:
            self._name_width = name_width
            self.relayout()
        widths = {key: self.width_of(key) for key in ("cpu_spark", "rss_spark")}
        wanted = [s for s in snapshot.services if not self._filter or self._filter in s.name.lower()]
        wanted_names = {s.name for s in wanted}
        for key in self.row_keys():
            if key not in wanted_names:
                self.drop_row(key)
        order_changed = False
        for status in wanted:
            count = None if open_by_service is None else open_by_service.get(status.name, 0)
            order_changed |= self.set_row(status.name, cells(status, history.get(status.name), count, widths))
        if order_changed and self.row_count > 1:
            # A row filtered out and back in is re-added at the bottom: keep the config's order.
            position = {s.name: i for i, s in enumerate(snapshot.services)}
            selected = self.selected_key
            self.sort("name", key=lambda name: position.get(name.plain[2:], 1 << 30))
            if selected:
                self.select(selected)

    @property
    def selected_service(self) -> str | None:
        return self.selected_key
